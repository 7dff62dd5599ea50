"""Sampling: SVD-xt's Euler schedule (:mod:`.scheduler`), the official frame windows (:mod:`.windows`), the
windowed guided denoiser that one model evaluation is (:mod:`.denoiser`), the Euler loop with its step hooks
(:mod:`.loop`), :func:`.sampler.sample` tying them together with the window plan and progress total, the
identity/pose strength controls (:mod:`.controls`) and latent previews (:mod:`.preview`)."""
