"""Face identity for StableAnimator: insightface antelopev2 (imported lazily; optional at import time)."""

from .antelopev2 import AntelopeV2, find_pack, load_antelopev2, require_insightface
from .driving_faces import driving_face_boxes
from .landmarks import facexlib_landmark_model
from .reference import (
    ARCFACE_CHANNELS, DET_SIZES, NO_FACE_POLICIES, ReferenceIdentity, align_face_512, largest_face,
    reference_identity,
)

__all__ = [
    "ARCFACE_CHANNELS", "AntelopeV2", "DET_SIZES", "NO_FACE_POLICIES", "ReferenceIdentity", "align_face_512",
    "driving_face_boxes", "facexlib_landmark_model", "find_pack", "largest_face", "load_antelopev2",
    "reference_identity", "require_insightface",
]
