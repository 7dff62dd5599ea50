"""Face boxes detected by insightface on the driving frames: the alternatives to boxes from face keypoints.

``driving_face_boxes``: one box per frame, the largest face (the person being animated is normally the largest),
None where no face is found, in driving-frame pixels; ``pose.face_boxes.map_driving_box`` moves it the way the
alignment moved that frame's face, onto the generation canvas.

``official_face_box`` / ``official_face_boxes``: the box the official HJB script reads from the masks
``face_mask_extraction.py`` writes (``:10-38``): insightface on the channel-swapped frame (``COLOR_RGB2BGR`` on
``cv2.imread``'s BGR), a filled rectangle per detected face with ``int()``-truncated corners, the whole frame
(all 255) when no face is found; ``inference_op.py:429-438`` then takes the bounding box of the 255 pixels.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from ..boxes import FaceBox
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


def official_face_box(faces_xyxy: Sequence[Sequence[float]], height: int, width: int) -> Optional[FaceBox]:
    """The inclusive box of the official mask of an image of ``height`` x ``width`` with these detections:
    the union of ``cv2.rectangle(mask, (int(x0), int(y0)), (int(x1), int(y1)), 255, FILLED)``, the whole image
    when there is none, None when every rectangle lies outside the image (the official script then stops)."""
    if len(faces_xyxy) == 0:
        return 0, height - 1, 0, width - 1
    ys, xs = [], []
    for box in faces_xyxy:
        x0, y0, x1, y1 = (int(v) for v in box[:4])  # int() truncates towards zero, as the official code
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        # cv2.rectangle fills both corner pixels and clips to the image
        cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, width - 1), max(y0, 0), min(y1, height - 1)
        if cx0 <= cx1 and cy0 <= cy1:
            xs += [cx0, cx1]
            ys += [cy0, cy1]
    if not xs:
        return None
    return min(ys), max(ys), min(xs), max(xs)


def official_face_boxes(frames_rgb: Iterable[np.ndarray], model: AntelopeV2,
                        det_size: int = DEFAULT_DET_SIZE) -> list[Optional[FaceBox]]:
    """``official_face_box`` of every frame ((H, W, 3) uint8 RGB), in that frame's pixels. insightface gets the
    RGB array, as the script's ``COLOR_RGB2BGR`` on a BGR image hands it; facexlib's RetinaFace retry is not run
    (it needs facexlib's weights), so a frame insightface misses gets the whole-frame box at once."""
    boxes: list[Optional[FaceBox]] = []
    for i, frame in enumerate(frames_rgb):
        image = check_rgb_image(frame, f"driving frame {i}")
        faces = model.faces(np.ascontiguousarray(image), det_size)
        boxes.append(official_face_box([f.bbox for f in faces], image.shape[0], image.shape[1]))
    return boxes
