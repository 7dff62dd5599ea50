"""The loaded StableAnimator networks, as one bundle every stage takes (built by :mod:`.components`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class StableAnimatorModels:
    unet: torch.nn.Module
    pose_net: torch.nn.Module
    face_encoder: torch.nn.Module
    vae: Optional[torch.nn.Module]  # None: loaded without the SVD folder (ComfyUI's VAE is given to the nodes)
    image_encoder: Optional[torch.nn.Module]  # None: likewise (ComfyUI's CLIP vision)
    scheduler_config: Optional[dict[str, Any]] = None
    face_embedder: Optional[torch.nn.Module] = None  # IResNet-100, only for HJB

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device
