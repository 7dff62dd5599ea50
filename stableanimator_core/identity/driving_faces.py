"""Face boxes detected by insightface on the driving frames: the alternative to boxes from face keypoints.

The boxes are in driving-frame pixels; ``pose.face_boxes.map_driving_box`` moves them the way the alignment
moved that frame's face, onto the generation canvas. One box per frame: the largest face (the person being
animated is normally the largest), None where no face is found.
"""

from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np

from .antelopev2 import DEFAULT_DET_SIZE, AntelopeV2
from .reference import check_rgb_image, largest_face


def driving_face_boxes(
    frames_rgb: Iterable[np.ndarray], model: AntelopeV2, det_size: int = DEFAULT_DET_SIZE
) -> list[Optional[np.ndarray]]:
    """Per frame ((H, W, 3) uint8 RGB, fed to insightface as BGR) the largest face box ``x0, y0, x1, y1``."""
    boxes: list[Optional[np.ndarray]] = []
    for i, frame in enumerate(frames_rgb):
        bgr = cv2.cvtColor(check_rgb_image(frame, f"driving frame {i}"), cv2.COLOR_RGB2BGR)
        face = largest_face(model.faces(bgr, det_size))
        boxes.append(None if face is None else np.asarray(face.bbox, dtype=np.float64))
    return boxes
