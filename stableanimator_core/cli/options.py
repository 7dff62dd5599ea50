"""The command line's options for one animation (``animate`` and each job of ``batch``): a plain record whose
defaults come from the settings model (:mod:`..settings`, :mod:`..hjb.settings`, :mod:`..presets`), so a default
is written once; :func:`.plan.plan_animation` checks them and builds the stages' settings from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..hjb.settings import HJBSettings
from ..presets import PACK
from ..sampling.controls import OFFICIAL as OFFICIAL_TERM
from ..settings import CONDITIONING, SAMPLER

HJB_DEFAULTS = HJBSettings()


@dataclass
class AnimateOptions:
    reference: Path
    driving: Path
    out: Path
    models: Path = Path("models")
    width: int = CONDITIONING.width
    height: int = CONDITIONING.height
    max_frames: Optional[int] = None
    frame_stride: int = 1
    steps: int = SAMPLER.steps
    guidance: float = SAMPLER.max_guidance
    tile_size: int = SAMPLER.tile_size
    tile_overlap: int = SAMPLER.tile_overlap
    seed: int = SAMPLER.seed
    fps: Optional[float] = None  # of the written video; default: the driving video's
    decode_chunk_size: int = 4
    precision: str = "auto"
    device: Optional[str] = None
    align: str = "global"
    missing: str = "empty"
    person: str = "largest"
    min_keypoints: int = 1
    no_identity: bool = False
    arcface_channels: str = "training"
    no_face: str = "error"
    hjb: bool = False
    hjb_mode: str = PACK.hjb_mode
    hjb_window: str = "tiled"
    hjb_boxes: str = "skeleton"
    hjb_iterations: int = HJB_DEFAULTS.num_iterations
    hjb_start: int = HJB_DEFAULTS.start_step
    hjb_end: int = HJB_DEFAULTS.end_step
    provider: str = "auto"
    framing: str = "stretch"  # stretch (official) | crop | pad
    crop_on: str = "center"  # center | person | face
    first_frame_fix: bool = CONDITIONING.first_frame_fix
    id_strength: float = OFFICIAL_TERM.strength
    id_start: float = OFFICIAL_TERM.start_percent
    id_end: float = OFFICIAL_TERM.end_percent
    pose_strength: float = OFFICIAL_TERM.strength
    pose_start: float = OFFICIAL_TERM.start_percent
    pose_end: float = OFFICIAL_TERM.end_percent
    parallel: str = "auto"  # under torchrun: split windows, CFG halves, or whichever balances better
    timings: dict[str, float] = field(default_factory=dict)
