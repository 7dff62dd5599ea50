"""The generation settings, one model for every path (CLI, nodes, parity replay, benchmarks).

Frozen dataclasses whose field defaults are the official values; each checks its fields in ``__post_init__``
and raises :class:`errors.InputError` naming the setting, the value and the allowed range. Every float must be
finite: NaN passes every ``<`` / ``<=`` check and would otherwise turn into a black video. The CLI's argument
defaults and the nodes' widget defaults and ranges are read from here (:data:`SAMPLER`, :data:`CONDITIONING`,
:func:`widget_range`), so a default is written once. HJB's settings live in :mod:`.hjb.settings` (same style).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Optional

from .errors import InputError
from .sampling.controls import OFFICIAL, TermWindow

OFFICIAL_SEED = 23123134
SEED_MAX = 0xFFFFFFFFFFFFFFFF

# (min, max) of every numeric setting; the node widgets use the same bounds
RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, 1000),
    "guidance": (1.0, 100.0),  # exclusive minimum: CFG is always on in StableAnimator
    "tile_size": (1, 4096),
    "tile_overlap": (0, 4095),
    "seed": (0, SEED_MAX),
    "width": (64, 4096),
    "height": (64, 4096),
    "fps": (1, 240),
    "motion_bucket_id": (0.0, 1023.0),
    "noise_aug_strength": (0.0, 1.0),
}


def widget_range(name: str) -> dict[str, float]:
    """``{"min": .., "max": ..}`` for a node widget of setting ``name``."""
    lo, hi = RANGES[name]
    return {"min": lo, "max": hi}


def check_number(name: str, value: object, *, integer: bool = False, above: Optional[float] = None,
                 why: str = "") -> None:
    """``value`` is a finite number (a whole one if ``integer``) inside ``RANGES[name]`` (and ``> above``)."""
    lo, hi = RANGES[name]
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, Real) or (integer and not float(value).is_integer()):
        raise InputError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    low_ok = value > above if above is not None else value >= lo
    if not low_ok or value > hi:
        bound = f"greater than {above}" if above is not None else f"at least {lo}"
        raise InputError(f"{name} must be {bound} and at most {hi}{why}, got {value!r}")


@dataclass(frozen=True)
class ConditioningSettings:
    """What the conditioning stage needs besides the images (SVD micro-conditioning, size, the two terms)."""

    width: int = 512
    height: int = 512
    fps: int = 7
    motion_bucket_id: float = 127.0
    noise_aug_strength: float = 0.02
    identity: TermWindow = OFFICIAL
    pose: TermWindow = OFFICIAL
    # SVD's first frame is often blurry (official issue #94): generate one more frame on a copy of the first
    # pose and drop it, so the video keeps its length
    first_frame_fix: bool = False

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps"):
            check_number(name, getattr(self, name), integer=True)
        check_number("motion_bucket_id", self.motion_bucket_id)
        check_number("noise_aug_strength", self.noise_aug_strength)
        self.identity.validate("identity")
        self.pose.validate("pose")


@dataclass(frozen=True)
class SamplerSettings:
    """The denoising loop's settings; the tiling is normalised per video by ``sampling.sampler.plan_sampling``."""

    steps: int = 25
    min_guidance: float = 3.0  # guidance on the first frame (SVD's per-frame ramp); = max_guidance: no ramp
    max_guidance: float = 3.0
    tile_size: int = 16
    tile_overlap: int = 4
    seed: int = OFFICIAL_SEED
    batch_cfg: bool = True  # one batch-2 UNet call per window instead of two batch-1 calls
    pose_cache_bytes: int = 2 << 30  # PoseNet features of all frames kept on device up to this size

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises :class:`errors.InputError` (a ``ValueError``) naming the first setting out of range."""
        check_number("steps", self.steps, integer=True)
        # official code: guidance <= 1 crashes (empty batch) or breaks the step; CFG is always on
        for value in (self.min_guidance, self.max_guidance):
            check_number("guidance", value, above=1.0, why=" (StableAnimator always uses classifier-free guidance)")
        check_number("tile_size", self.tile_size, integer=True)
        check_number("tile_overlap", self.tile_overlap, integer=True)
        if self.tile_overlap >= self.tile_size > 1:
            # clamping it silently multiplies the windows (100 frames, tile 16, overlap 16: 85 windows, not 8)
            raise InputError(f"tile_overlap ({self.tile_overlap}) must be below tile_size ({self.tile_size})")
        check_number("seed", self.seed, integer=True)
        if not isinstance(self.pose_cache_bytes, int) or self.pose_cache_bytes < 0:
            raise InputError(f"pose_cache_bytes must be a whole number >= 0, got {self.pose_cache_bytes!r}")


SAMPLER = SamplerSettings()
CONDITIONING = ConditioningSettings()
