"""Sampling: SVD-xt's Euler schedule, the official frame windows, the denoising loop and latent previews."""
