"""Device and precision choices (no ComfyUI here: the nodes pass ComfyUI's device in)."""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "official", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(precision: str, device: torch.device | str, hjb: bool = False) -> torch.dtype:
    """The dtype of the UNet, PoseNet, face encoder and CLIP encoder.

    ``auto``: bf16 on GPUs that support it, else fp16 on GPUs, fp32 on CPU (half is slow and lossy there).
    ``official``: what the official scripts use on any device: fp16 (``inference_basic.py:320``), fp32 with HJB
    (``inference_op.py:274``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "official":
        return torch.float32 if hjb else torch.float16
    if precision != "auto":
        return _DTYPES[precision]
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def resolve_decode_dtype(precision: str, hjb: bool = False) -> torch.dtype:
    """The VAE decoder's compute dtype. fp32 except for ``official`` without HJB: ``inference_basic.py`` casts the
    whole pipeline, VAE included, to fp16 and decodes in fp16 (only the encoder is upcast, SVD's
    ``force_upcast``). The pack decodes in fp32 otherwise: the decoder is a small share of the run, and SVD's
    VAE is marked as needing fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.float16 if precision == "official" and not hjb else torch.float32
