"""Device and precision choices (no ComfyUI here: the nodes pass ComfyUI's device in)."""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "official", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
# bf16 tensor cores arrived with Ampere (compute capability 8.0); before that torch emulates bf16 (slowly)
# and torch.cuda.is_bf16_supported() still says True, so it cannot make this decision
NATIVE_BF16_CAPABILITY = (8, 0)


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def has_native_bf16(device: torch.device | str) -> bool:
    """True on CUDA GPUs of compute capability 8.0 or newer (Ampere, Ada, Hopper, Blackwell)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


def resolve_dtype(precision: str, device: torch.device | str, hjb: bool = False) -> torch.dtype:
    """The dtype of the UNet, PoseNet, face encoder and CLIP encoder.

    ``auto``: bf16 where it is native (CUDA capability >= 8.0), fp16 on older CUDA GPUs and on Apple MPS, fp32 on
    the CPU and on other devices (half precision is slow and lossy there).
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
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
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


def precision_name(dtype: torch.dtype) -> str:
    return PRECISION_NAMES.get(dtype, str(dtype).removeprefix("torch."))
