"""Refusing non-finite results: NaN or infinite latents or frames never become a (black) video.

A stage's output is checked once, where it leaves the stage (one device synchronisation per stage, none in the
sampling loop). The error names the stage and the precision that avoids the overflow.
"""

from __future__ import annotations

import torch

from .devices import precision_name
from .errors import StableAnimatorError


class NonFiniteError(StableAnimatorError):
    """A stage produced NaN or infinite values; the message names the stage and the precision to use."""


def precision_advice(dtype: torch.dtype) -> str:
    if dtype == torch.float16:
        return ("Use precision bf16 instead (GPUs of compute capability 8.0 or newer: RTX 30xx/40xx, A100, H100) "
                "or fp32 (the model loader's 'precision', or --precision)")
    if dtype == torch.bfloat16:
        return "Use precision fp32 instead (the model loader's 'precision', or --precision)"
    return ("It already ran in fp32, so precision is not the cause: check the inputs and re-download the model "
            "files (a damaged file can hold NaN weights)")


def require_finite(tensor: torch.Tensor, stage: str, dtype: torch.dtype, advice: str | None = None) -> torch.Tensor:
    """``tensor`` unchanged if every value is finite, else :class:`NonFiniteError` naming ``stage``.

    ``dtype`` is the precision the stage computed in; it decides the advice unless ``advice`` is given.
    """
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise NonFiniteError(
            f"{stage} produced {bad} NaN/infinite values of {tensor.numel()} in {precision_name(dtype)}; the "
            f"video would be black or noise, so the run was stopped. {advice or precision_advice(dtype)}."
        )
    return tensor
