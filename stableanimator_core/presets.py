"""Where the pack deliberately computes something other than the official scripts, as named choices.

Each field of ``Choices`` is one such difference (the README's table lists them with the reasons). ``PACK`` holds
the pack's defaults, ``OFFICIAL`` the values that reproduce ``DWPose/skeleton_extraction.py``,
``inference_basic.py`` / ``inference_op.py`` and ``face_mask_extraction.py``. ``--preset official`` on the command
line and the ``official`` choice on the nodes select them; an option given explicitly still wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .errors import InputError

PRESETS = ("pack", "official")


@dataclass(frozen=True)
class Choices:
    person: str  # driving frames with several people (pose.extraction.PERSON_CHOICES)
    missing: str  # driving frames without a detected person (pose.extraction.MISSING_POLICIES)
    min_keypoints: int  # body joints a drawn person needs
    arcface_channels: str  # identity.reference.ARCFACE_CHANNELS
    no_face: str  # identity.reference.NO_FACE_POLICIES
    hjb_window: str  # hjb.settings.HJB_WINDOWS
    hjb_boxes: str  # face_masks.FACE_MASK_SOURCES: HJB target (and reference) face boxes
    hjb_mode: str  # hjb.settings.HJB_MODES
    precision: str  # devices.PRECISIONS

    def __post_init__(self) -> None:
        for name, allowed in _allowed().items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if isinstance(self.min_keypoints, bool) or not isinstance(self.min_keypoints, int) or self.min_keypoints < 0:
            raise InputError(f"min_keypoints must be a whole number >= 0, got {self.min_keypoints!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))


def _allowed() -> dict[str, tuple[str, ...]]:
    # imported here: the choice lists live with the code that uses them, some of which imports torch
    from .devices import PRECISIONS
    from .hjb.settings import HJB_MODES, HJB_WINDOWS
    from .identity.reference import ARCFACE_CHANNELS, NO_FACE_POLICIES
    from .pose.extraction import MISSING_POLICIES, PERSON_CHOICES
    from .pose.face_masks import FACE_MASK_SOURCES

    return {"person": PERSON_CHOICES, "missing": MISSING_POLICIES, "arcface_channels": ARCFACE_CHANNELS,
            "no_face": NO_FACE_POLICIES, "hjb_window": HJB_WINDOWS, "hjb_boxes": FACE_MASK_SOURCES,
            "hjb_mode": HJB_MODES, "precision": PRECISIONS}


PACK = Choices(person="largest", missing="empty", min_keypoints=1, arcface_channels="training", no_face="error",
               hjb_window="tiled", hjb_boxes="skeleton", hjb_mode="memory_bounded", precision="auto")
OFFICIAL = Choices(person="all", missing="whole_image", min_keypoints=0, arcface_channels="official_inference",
                   no_face="official", hjb_window="all_frames", hjb_boxes="official", hjb_mode="faithful",
                   precision="official")


def preset_choices(preset: str, overrides: Mapping[str, Any] | None = None) -> Choices:
    """The choices of ``preset`` with every non-None entry of ``overrides`` (same field names) put in."""
    if preset not in PRESETS:
        raise InputError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    base = OFFICIAL if preset == "official" else PACK
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k in base.names()}
    return replace(base, **given)
