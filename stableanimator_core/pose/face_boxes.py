"""Face boxes and masks per generated frame, for the HJB face optimisation.

The official HJB run wants masks of the *target* frames, which do not exist before generation; StableAnimator
issue #112 suggests the aligned skeleton's face points instead. The 68 face points span brows to chin and ear
to ear, while the official masks are face-detector boxes (forehead included), so the points' bounding box is
padded, mostly upwards. Without enough face points the head joints give a square box the way OpenPose's
face detector sizes it. Boxes use the shared inclusive ``(y_min, y_max, x_min, x_max)`` convention at the
generation resolution; poses are normalised, so they map onto any resolution the skeletons are resized to.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .keypoints import SCORE_THRESHOLD, PoseFrame

if TYPE_CHECKING:  # boxes.py imports torch; the CLI's pose command should not pay for it unless it makes masks
    from ..boxes import FaceBox

PAD_TOP, PAD_BOTTOM, PAD_SIDE = 0.25, 0.05, 0.05  # fractions of the face points' height / width
MIN_FACE_POINTS = 10
NOSE, EYES, EARS = 0, (14, 15), (16, 17)


def pixel_box(x0: float, y0: float, x1: float, y1: float, height: int, width: int) -> Optional[FaceBox]:
    """A pixel-edge rectangle -> inclusive integer box clipped to the image, or None if it lies outside."""
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None
    bx0, by0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    bx1, by1 = min(width - 1, int(math.ceil(x1)) - 1), min(height - 1, int(math.ceil(y1)) - 1)
    if bx1 < bx0 or by1 < by0:
        return None
    return by0, by1, bx0, bx1


def _points_rect(points: np.ndarray, pad_top: float, pad_bottom: float, pad_side: float):
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    w, h = x1 - x0, y1 - y0
    return x0 - pad_side * w, y0 - pad_top * h, x1 + pad_side * w, y1 + pad_bottom * h


def _head_rect(body: np.ndarray, scores: np.ndarray):
    # OpenPose's face box from the head joints: a square around the nose, 3x the eye and 1.5x the ear distance
    if not scores[NOSE] > SCORE_THRESHOLD:
        return None
    nose = body[NOSE]
    half = 0.0
    for joints, factor in ((EYES, 3.0), (EARS, 1.5)):
        for j in joints:
            if scores[j] > SCORE_THRESHOLD:
                half = max(half, float(np.abs(body[j] - nose).max()) * factor)
    if half <= 0:
        return None
    return nose[0] - half, nose[1] - half, nose[0] + half, nose[1] + half


def face_box_from_pose(
    frame: Optional[PoseFrame], height: int, width: int, pad_top: float = PAD_TOP, pad_bottom: float = PAD_BOTTOM,
    pad_side: float = PAD_SIDE, min_points: int = MIN_FACE_POINTS,
) -> Optional[FaceBox]:
    """The face box of ``frame`` at ``height`` x ``width`` (the largest, if several people), or None."""
    if frame is None:
        return None
    size = np.array([width, height], dtype=np.float64)
    best, best_area = None, -1.0
    for n in range(frame.num_people):
        visible = frame.face_scores[n] > SCORE_THRESHOLD
        if visible.sum() >= min_points:
            rect = _points_rect(frame.face[n][visible] * size, pad_top, pad_bottom, pad_side)
        else:
            rect = _head_rect(frame.body[n] * size, frame.body_scores[n])
        box = None if rect is None else pixel_box(*rect, height, width)
        if box is not None:
            area = float(box[1] - box[0] + 1) * float(box[3] - box[2] + 1)
            if area > best_area:
                best, best_area = box, area
    return best


def face_boxes_from_poses(
    frames: Sequence[Optional[PoseFrame]], height: int, width: int, **options
) -> list[Optional[FaceBox]]:
    """One box (or None) per frame; ``options`` as for ``face_box_from_pose``."""
    return [face_box_from_pose(f, height, width, **options) for f in frames]


def face_masks_from_poses(frames: Sequence[Optional[PoseFrame]], height: int, width: int, **options):
    """``(boxes, masks)``: the boxes and a ``[F, H, W]`` float MASK batch (1 inside each box)."""
    from ..boxes import masks_from_boxes

    boxes = face_boxes_from_poses(frames, height, width, **options)
    return boxes, masks_from_boxes(boxes, height, width)


def map_driving_box(
    box_xyxy: Optional[Sequence[float]], driving_size: tuple[int, int],
    face_map: Optional[tuple[np.ndarray, np.ndarray]], height: int, width: int,
) -> Optional[FaceBox]:
    """A face box found on a driving frame (pixels ``x0, y0, x1, y1``, driving ``(w, h)``) moved the way the
    alignment moved that frame's face points, at ``height`` x ``width``."""
    if box_xyxy is None or face_map is None:
        return None
    scale, offset = face_map
    dw, dh = driving_size
    corners = np.array([[box_xyxy[0] / dw, box_xyxy[1] / dh], [box_xyxy[2] / dw, box_xyxy[3] / dh]])
    (x0, y0), (x1, y1) = corners * scale + offset
    return pixel_box(min(x0, x1) * width, min(y0, y1) * height, max(x0, x1) * width, max(y0, y1) * height,
                     height, width)
