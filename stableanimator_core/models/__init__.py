"""Model definitions (plain PyTorch, official key names)."""
