"""Per-frame face boxes and masks for HJB, from the aligned skeletons or from insightface on the driving frames."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

import torch

from ..boxes import FaceBox, masks_from_boxes, rescale_box
from . import PoseSequence, face_boxes_from_poses, map_driving_box

FACE_MASK_SOURCES = ("skeleton", "insightface", "official")


def sequence_face_boxes(sequence: PoseSequence, height: int, width: int, source: str = "skeleton",
                        driving_frames: Optional[Sequence[np.ndarray]] = None,
                        face_analysis=None) -> list[Optional[FaceBox]]:
    """One box per output frame of ``sequence`` at ``height`` x ``width``.

    ``skeleton`` uses the aligned face keypoints (no extra model). ``insightface`` detects the face on each
    driving frame and moves its box the way the alignment moved that frame; frames where it finds no face fall
    back to the skeleton's box. ``official`` is ``face_mask_extraction.py`` on the driving frames (see
    ``identity.driving_faces.official_face_box``): not moved by the alignment, only scaled from the driving
    frame's size to ``height`` x ``width`` (the official script needs the frames at that size already).
    """
    if source not in FACE_MASK_SOURCES:
        raise ValueError(f"face mask source must be one of {FACE_MASK_SOURCES}, got {source!r}")
    if source == "skeleton":
        return face_boxes_from_poses(sequence.aligned, height, width)
    if driving_frames is None or face_analysis is None:
        raise ValueError(f"{source} face boxes need the driving frames and the antelopev2 model")
    if source == "official":
        from ..identity.driving_faces import official_face_boxes

        found = official_face_boxes(driving_frames, face_analysis)
        return [rescale_box(b, f.shape[:2], (height, width)) for b, f in zip(found, driving_frames)]
    from ..identity import driving_face_boxes

    from_skeleton = face_boxes_from_poses(sequence.aligned, height, width)
    detected = driving_face_boxes(driving_frames, face_analysis)
    boxes = []
    for i, src in enumerate(sequence.source):
        box = None
        if src is not None and detected[src] is not None:
            h, w = driving_frames[src].shape[:2]
            box = map_driving_box(detected[src], (w, h), sequence.face_maps[i], height, width)
        boxes.append(box if box is not None else from_skeleton[i])
    return boxes



def face_masks_at(boxes: Sequence[Optional[FaceBox]], source_hw: tuple[int, int], height: int,
                  width: int) -> torch.Tensor:
    """``[F, height, width]`` float masks of boxes found at ``source_hw``, rescaled as the sampler rescales a
    mask's box, so a mask made here gives the sampler the very boxes a source-size mask would."""
    return masks_from_boxes([rescale_box(b, source_hw, (height, width)) for b in boxes], height, width)
