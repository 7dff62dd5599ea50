"""Helpers for tests and demos that need no real weights (tiny stand-in models)."""
