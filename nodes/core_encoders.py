"""ComfyUI's own ``VAE`` and ``CLIP_VISION`` on the pack's nodes (e.g. both from ``ImageOnlyCheckpointLoader`` on
``svd_xt.safetensors``), in place of the ones in the StableAnimator download's ``SVD/`` folder.

* VAE: the core VAE's weights (ComfyUI's key layout) fill the pack's SVD VAE (strictly, float32 as the official
  pipeline encodes), once per core VAE object. Encoding, chunked decoding, HJB's face decoding and the non-finite
  checks are then the pack's own, not a second implementation; fp32 tensors are shared with the core VAE, not copied.
* CLIP vision: ComfyUI's model runs on the official preprocessing (SVD's anti-aliased resize to 224x224, no crop).
  Core's ``encode_image`` is not used for this: its resize is another filter and it rounds the pixels to 8 bits.
  ComfyUI's memory manager loads it, like any core model.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Optional

import numpy as np
import torch

from ..stableanimator_core.errors import CheckpointError, InputError
from ..stableanimator_core.loading.components import vae_from_comfy_layout
from ..stableanimator_core.numerics import require_finite
from ..stableanimator_core.pipeline import conditioning as C
from . import comfy_bridge as bridge
from .payloads import ModelHandle

log = logging.getLogger("StableAnimator")
NO_VAE = ("connect a core VAE to 'vae' (the VAE of svd_xt.safetensors, e.g. from Image Only Checkpoint Loader), or "
          "choose the SVD folder in StableAnimator Model Loader")
NO_CLIP = ("connect a core CLIP_VISION to 'clip_vision' (the CLIP vision of svd_xt.safetensors, e.g. from Image Only "
           "Checkpoint Loader), or choose the SVD folder in StableAnimator Model Loader")
_PACK_VAES: "weakref.WeakKeyDictionary[Any, tuple[torch.nn.Module, bridge.ManagedModels]]" = \
    weakref.WeakKeyDictionary()


def vae_for(model: ModelHandle, core_vae: Optional[Any], stage: str) -> tuple[torch.nn.Module, bridge.ManagedModels]:
    """(VAE module, its managed group): the connected core VAE's, else the Model Loader's."""
    if core_vae is not None:
        return pack_vae(core_vae)
    if model.models.vae is None:
        raise InputError(f"{stage} needs SVD's VAE, and StableAnimator Model Loader was given no SVD folder: {NO_VAE}")
    return model.models.vae, model.vae


def pack_vae(core_vae: Any) -> tuple[torch.nn.Module, bridge.ManagedModels]:
    cached = _PACK_VAES.get(core_vae)
    if cached is not None:
        return cached
    get_sd = getattr(core_vae, "get_sd", None)
    if get_sd is None:
        raise InputError("the connected 'vae' is not a ComfyUI VAE (it has no weights to read)")
    sd = get_sd()
    stored = {v.dtype for v in sd.values() if v.is_floating_point()}
    if stored - {torch.float32}:
        log.warning("the connected VAE holds %s weights (ComfyUI's choice for this device); the official pipeline's "
                    "VAE is float32: start ComfyUI with --fp32-vae for the official numbers",
                    ", ".join(sorted(str(d).replace("torch.", "") for d in stored - {torch.float32})))
    try:
        module = vae_from_comfy_layout(sd, "the connected VAE", bridge.offload_device())
    except CheckpointError as exc:
        raise InputError(f"{exc}. StableAnimator needs SVD-xt's temporal VAE, not an SD / SDXL image VAE") from exc
    group = bridge.ManagedModels(bridge.ModuleGroup(vae=module), bridge.torch_device(), bridge.offload_device())
    _PACK_VAES[core_vae] = (module, group)
    log.info("StableAnimator: using the connected core VAE")
    return module, group


def clip_embeds(clip_vision: Any, reference: np.ndarray, expected_dim: int) -> torch.Tensor:
    """``[1, 1, D]`` float32 CPU image embedding of an ``[H, W, 3]`` uint8 reference by a core CLIP vision model."""
    model = getattr(clip_vision, "model", None)
    if model is None or not hasattr(clip_vision, "patcher"):
        raise InputError("the connected 'clip_vision' is not a ComfyUI CLIP vision model")
    pixels = C.clip_pixels(reference)
    bridge.load_core_model(clip_vision.patcher)
    device = getattr(clip_vision, "load_device", bridge.torch_device())
    with torch.no_grad():
        out = model(pixel_values=pixels.to(device), intermediate_output=-2)
    embeds = out[2]  # (last hidden state, penultimate, projected pooled output, ...) since ComfyUI 0.1
    if embeds is None or embeds.ndim != 2 or embeds.shape[-1] != expected_dim:
        got = "nothing" if embeds is None else f"shape {tuple(embeds.shape)}"
        raise InputError(f"the connected CLIP vision model gives {got}; StableAnimator needs SVD-xt's ViT-H "
                         f"({expected_dim}-d image embeddings): use the CLIP vision of svd_xt.safetensors "
                         f"(clip_vision_h for the CLIP Vision loader)")
    embeds = embeds.float().cpu()[:, None]
    return require_finite(embeds, "CLIP image encoding (core CLIP vision)", embeds.dtype)
