"""Settings of the HJB face optimisation (official defaults: 3 Adam iterations at steps 0..20, eta 0.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ..errors import InputError

HJBMode = Literal["faithful", "memory_bounded", "fast"]
HJB_MODES: tuple[str, ...] = ("faithful", "memory_bounded", "fast")
# tiled: the sampler's frame windows, as without HJB; all_frames: one window over the whole video, as
# inference_op.py:461 (tile_size=num_frames), whose memory grows with the frame count
HJB_WINDOWS: tuple[str, ...] = ("tiled", "all_frames")
_FAST_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
_DTYPE_NAMES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
                "fp32": torch.float32, "float32": torch.float32}


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    """``"bf16"``/``"fp16"``/``"fp32"`` (or a torch dtype) -> torch dtype."""
    if isinstance(value, torch.dtype):
        return value
    try:
        return _DTYPE_NAMES[str(value).lower()]
    except KeyError:
        raise InputError(f"unknown dtype {value!r}; use one of bf16, fp16, fp32") from None


@dataclass(frozen=True)
class HJBSettings:
    """What the sampler needs to run HJB at a denoising step.

    ``mode``:
      * ``faithful`` - the official computation: all frames decoded with the graph kept, one backward.
      * ``memory_bounded`` - exact as well (same gradient up to float rounding): loss and backward one decode
        chunk at a time with finer gradient checkpointing, so peak memory does not grow with the frame count.
      * ``fast`` - an approximation: like ``memory_bounded`` but the decoder and face net run in ``fast_dtype``
        and only a latent window around each chunk's faces (plus ``fast_margin`` latent pixels) is decoded.
    ``fast_margin``: latent pixels added around the faces in fast mode; ``None`` uses the decoder's convolutional
    receptive radius (18 for the SVD-xt VAE), see ``decode.conv_receptive_radius``.
    ``window``: one of ``HJB_WINDOWS``; the sampler's window size with HJB on (see ``tile_size_for``).
    """

    num_iterations: int = 3
    start_step: int = 0
    end_step: int = 20
    eta: float = 0.1
    mode: HJBMode = "faithful"
    decode_chunk_size: int = 4
    fast_dtype: torch.dtype = torch.bfloat16
    fast_margin: Optional[int] = None
    window: str = "tiled"

    def __post_init__(self) -> None:
        if self.mode not in HJB_MODES:
            raise InputError(f"HJB mode must be one of {', '.join(HJB_MODES)}; got {self.mode!r}")
        if self.window not in HJB_WINDOWS:
            raise InputError(f"HJB window must be one of {', '.join(HJB_WINDOWS)}; got {self.window!r}")
        if not isinstance(self.num_iterations, int) or self.num_iterations < 1:
            raise InputError(f"HJB iterations must be a whole number >= 1, got {self.num_iterations!r}")
        if not isinstance(self.start_step, int) or self.start_step < 0:
            raise InputError(f"HJB start step must be >= 0, got {self.start_step!r}")
        if not isinstance(self.end_step, int) or self.end_step < self.start_step:
            raise InputError(f"HJB end step ({self.end_step!r}) must be >= the start step ({self.start_step})")
        if not math.isfinite(float(self.eta)) or float(self.eta) <= 0:
            raise InputError(f"HJB eta (learning-rate scale) must be a positive number, got {self.eta!r}")
        if not isinstance(self.decode_chunk_size, int) or self.decode_chunk_size < 1:
            raise InputError(f"HJB decode chunk size must be >= 1, got {self.decode_chunk_size!r}")
        # accept "bf16"-style names from node widgets; the frozen dataclass needs object.__setattr__
        object.__setattr__(self, "fast_dtype", parse_dtype(self.fast_dtype))
        if self.fast_dtype not in _FAST_DTYPES:
            raise InputError(f"HJB fast dtype must be bf16, fp16 or fp32, got {self.fast_dtype}")
        if self.fast_margin is not None and (not isinstance(self.fast_margin, int) or self.fast_margin < 0):
            raise InputError(f"HJB fast margin must be None or >= 0 latent pixels, got {self.fast_margin!r}")

    def tile_size_for(self, num_frames: int, tile_size: int) -> int:
        """The sampler's window size with HJB on: the requested one (capped at the frame count) when tiled, all
        frames for ``all_frames``."""
        return num_frames if self.window == "all_frames" else min(tile_size, num_frames)

    def is_refined(self, step_index: int) -> bool:
        """Whether denoising step ``step_index`` (0-based) runs the face optimisation (inclusive range)."""
        return self.start_step <= step_index <= self.end_step

    def total_iterations(self, num_steps: int) -> int:
        """Adam iterations over a run of ``num_steps`` denoising steps (for a progress bar)."""
        return self.num_iterations * sum(self.is_refined(i) for i in range(num_steps))

    def learning_rate(self, step_index: int, num_steps: int) -> float:
        """Adam's learning rate at a step: ``eta * (1 - i / num_steps)`` (same float ops as the official code)."""
        if num_steps < 1:
            raise InputError(f"the number of denoising steps must be >= 1, got {num_steps}")
        if not 0 <= step_index < num_steps:
            raise InputError(f"step index {step_index} is outside 0..{num_steps - 1}")
        return self.eta * (1.0 - step_index / num_steps)
