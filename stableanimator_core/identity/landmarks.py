"""The 5-point landmark model of the official no-face retry: facexlib's RetinaFace (ResNet-50), when present.

``inference_basic.py:351-361`` runs ``FaceRestoreHelper(det_model='retinaface_resnet50')`` when insightface finds no
face: RetinaFace at confidence 0.97, the face nearest the image centre (``only_center_face=True``), its five
landmarks. facexlib is optional and would download its weights on first use; we never download, so the retry is
available only when facexlib is installed and ``detection_Resnet50_Final.pth`` is already in the folder given
(ComfyUI keeps it in ``models/facexlib``, where PuLID puts it).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np

from .reference import LandmarkModel

log = logging.getLogger(__name__)

RETINAFACE_FILE = "detection_Resnet50_Final.pth"
RETINAFACE_THRESHOLD = 0.97  # face_restoration_helper.get_face_landmarks_5


def center_face_landmarks(detections: np.ndarray, height: int, width: int) -> Optional[np.ndarray]:
    """facexlib's ``only_center_face`` choice from RetinaFace rows ``[x0, y0, x1, y1, score, 10 landmark coords]``."""
    if detections is None or len(detections) == 0:
        return None
    rows = np.asarray(detections, dtype=np.float64)
    centres = np.stack([(rows[:, 0] + rows[:, 2]) / 2, (rows[:, 1] + rows[:, 3]) / 2], axis=1)
    best = int(np.argmin(np.linalg.norm(centres - [width / 2, height / 2], axis=1)))  # first of equals, as min()
    return rows[best, 5:15].reshape(5, 2).astype(np.float32)


def facexlib_landmark_model(weights_dir: Optional[str], device: str = "cpu") -> Optional[LandmarkModel]:
    """A landmark model for ``reference_identity(..., landmark_model=...)``, or None (with a log line) when
    facexlib or its RetinaFace weights are not available."""
    path = os.path.join(weights_dir, RETINAFACE_FILE) if weights_dir else None
    if path is None or not os.path.isfile(path):
        log.info("no %s in %s: the official aligned-face retry is skipped", RETINAFACE_FILE, weights_dir)
        return None
    try:
        import torch
        from facexlib.detection import init_detection_model
    except ImportError:
        log.info("facexlib is not installed: the official aligned-face retry is skipped")
        return None
    # the file exists, so facexlib loads it instead of downloading
    net = init_detection_model("retinaface_resnet50", half=False, device=device, model_rootpath=weights_dir)

    def landmarks(image: np.ndarray) -> Optional[np.ndarray]:
        with torch.no_grad():
            rows = net.detect_faces(image, RETINAFACE_THRESHOLD)
        return center_face_landmarks(rows, image.shape[0], image.shape[1])

    return landmarks
