"""Per-frame face boxes and masks for HJB, from the aligned skeletons or from insightface on the driving frames."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..boxes import FaceBox
from . import PoseSequence, face_boxes_from_poses, map_driving_box

FACE_MASK_SOURCES = ("skeleton", "insightface")


def sequence_face_boxes(sequence: PoseSequence, height: int, width: int, source: str = "skeleton",
                        driving_frames: Optional[Sequence[np.ndarray]] = None,
                        face_model=None) -> list[Optional[FaceBox]]:
    """One box per output frame of ``sequence`` at ``height`` x ``width``.

    ``skeleton`` uses the aligned face keypoints (no extra model). ``insightface`` detects the face on each
    driving frame and moves its box the way the alignment moved that frame; frames where it finds no face fall
    back to the skeleton's box.
    """
    from_skeleton = face_boxes_from_poses(sequence.aligned, height, width)
    if source == "skeleton":
        return from_skeleton
    if source != "insightface":
        raise ValueError(f"face mask source must be one of {FACE_MASK_SOURCES}, got {source!r}")
    if driving_frames is None or face_model is None:
        raise ValueError("insightface face boxes need the driving frames and the antelopev2 model")
    from ..identity import driving_face_boxes

    detected = driving_face_boxes(driving_frames, face_model)
    boxes = []
    for i, src in enumerate(sequence.source):
        box = None
        if src is not None and detected[src] is not None:
            h, w = driving_frames[src].shape[:2]
            box = map_driving_box(detected[src], (w, h), sequence.face_maps[i], height, width)
        boxes.append(box if box is not None else from_skeleton[i])
    return boxes

