"""Face identity for StableAnimator: insightface antelopev2 (imported lazily; optional at import time)."""

from .antelopev2 import AntelopeV2, find_pack, load_antelopev2, require_insightface
from .driving_faces import driving_face_boxes
from .reference import DET_SIZES, ReferenceIdentity, largest_face, reference_identity

__all__ = [
    "AntelopeV2", "DET_SIZES", "ReferenceIdentity", "driving_face_boxes", "find_pack", "largest_face",
    "load_antelopev2", "reference_identity", "require_insightface",
]
