"""The Python objects that travel on the pack's custom sockets.

Socket type names are prefixed and stable: they are saved in users' workflows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ..stableanimator_core.boxes import FaceBox
from ..stableanimator_core.pipeline.conditioning import Conditioning
from ..stableanimator_core.hjb import HJBSettings
from ..stableanimator_core.loading.bundle import StableAnimatorModels
from .comfy_bridge import ManagedModels, ModuleGroup, offload_device, torch_device

MODEL = "STABLEANIMATOR_MODEL"
CLIP_EMBEDS = "STABLEANIMATOR_CLIP"
FACE = "STABLEANIMATOR_FACE"
COND = "STABLEANIMATOR_COND"
HJB = "STABLEANIMATOR_HJB"
POSE_KEYPOINT = "POSE_KEYPOINT"  # comfyui_controlnet_aux's OpenPose-JSON list


@dataclass
class ModelHandle:
    """Loaded StableAnimator models, grouped so ComfyUI can load and evict each group on its own."""

    models: StableAnimatorModels
    dtype: torch.dtype
    sampling: ManagedModels  # UNet + PoseNet
    encoders: ManagedModels  # CLIP image encoder + face encoder
    vae: Optional[ManagedModels]  # None without the SVD folder (a core VAE is connected to the nodes instead)
    name: str = ""
    decode_dtype: torch.dtype = torch.float32  # fp16 for the official basic script's precision

    @classmethod
    def wrap(cls, models: StableAnimatorModels, dtype: torch.dtype, name: str = "",
             decode_dtype: torch.dtype = torch.float32) -> "ModelHandle":
        load, offload = torch_device(), offload_device()
        return cls(
            models=models, dtype=dtype, decode_dtype=decode_dtype,
            sampling=ManagedModels(ModuleGroup(unet=models.unet, pose_net=models.pose_net), load, offload),
            encoders=ManagedModels(ModuleGroup(image_encoder=models.image_encoder, face_encoder=models.face_encoder),
                                   load, offload),
            vae=ManagedModels(ModuleGroup(vae=models.vae), load, offload) if models.vae is not None else None,
            name=name,
        )


@dataclass
class ClipEmbedding:
    embeds: torch.Tensor  # [1, 1, D] on CPU


@dataclass
class FaceIdentity:
    """The reference's ArcFace identity, or an explicit "no identity" (zero face tokens)."""

    embedding: Optional[np.ndarray]  # raw 512-d antelopev2/glintr100 embedding; None = no-identity mode
    box: Optional[FaceBox]  # on the reference image at its original size
    image_hw: tuple[int, int]
    score: float = 0.0


@dataclass
class HJBOptions:
    settings: HJBSettings
    face_net: torch.nn.Module  # IResNet-100 (glintr100_torch.pth), float32
    face_net_group: ManagedModels
    core_vae: Optional[Any] = None  # a ComfyUI VAE connected to the HJB node, else the Model Loader's VAE decodes


@dataclass
class AnimationConditioning:
    cond: Conditioning
    reference: np.ndarray  # [H, W, 3] uint8 at original size (HJB crops the reference face from it)
    reference_face_box: Optional[FaceBox]
    settings: dict[str, Any] = field(default_factory=dict)
