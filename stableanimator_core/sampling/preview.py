"""Cheap RGB previews of latents during sampling (no VAE decode)."""

from __future__ import annotations

import numpy as np
import torch

# Linear map from SD/SVD latent channels to RGB, the approximation ComfyUI's own previews use for this space.
_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


def latent_to_rgb(latent: torch.Tensor) -> np.ndarray:
    """``[4, h, w]`` latent -> ``[h, w, 3]`` uint8 preview."""
    rgb = torch.einsum("chw,cr->hwr", latent.detach().float().cpu(), _LATENT_RGB)
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()


def preview_frame(latents: torch.Tensor) -> np.ndarray:
    """Preview of the middle frame of ``[1, F, 4, h, w]`` latents."""
    return latent_to_rgb(latents[0, latents.shape[1] // 2])
