"""The reference image's ArcFace identity (glintr100 via insightface antelopev2), as StableAnimator uses it.

Conventions, checked against the official code:

* the **raw** 512-d embedding (``face.embedding``, not ``normed_embedding``) of the face with the largest box;
* **BGR** input. StableAnimator's training data loader feeds insightface the BGR image ``cv2.imread`` returns
  (``animation_dataset.py``, after resizing to the training resolution); its inference script converts that
  image with ``COLOR_RGB2BGR``, i.e. hands insightface RGB by mistake. We follow training: the model learnt
  from BGR embeddings. Pass ``size`` to resize first, as training did;
* no face: the official script falls back to facexlib and then silently to a zero vector. Here a detection
  ladder (640 px, then smaller, as cubiq's InstantID does, which finds large close-up faces) runs first, then
  NoFaceError names the image, unless the caller asked for the no-identity mode (``allow_no_face=True``,
  which returns None: the caller decides what "no identity" means, never a silent zero vector).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import InputError, NoFaceError
from .antelopev2 import AntelopeV2

log = logging.getLogger(__name__)

DET_SIZES = tuple(range(640, 128, -64))  # 640, 576, ..., 192


@dataclass
class ReferenceIdentity:
    embedding: np.ndarray  # (512,) float32, raw (not L2-normalised)
    box: np.ndarray  # (4,) x0, y0, x1, y1 in pixels of the image given
    landmarks: np.ndarray  # (5, 2) eyes, nose, mouth corners
    det_score: float
    num_faces: int
    det_size: int


def check_rgb_image(image: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise InputError(f"{name} must be an (H, W, 3) uint8 RGB image, got {shape} {getattr(image, 'dtype', '')}")
    return image


def box_area(box: Sequence[float]) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def largest_face(faces: Sequence):
    """The face with the largest box; on ties the later one, as the official ``sorted(...)[-1]`` picks."""
    best = None
    for face in faces:
        if best is None or box_area(face.bbox) >= box_area(best.bbox):
            best = face
    return best


def detect_with_ladder(model: AntelopeV2, image_bgr: np.ndarray, sizes: Sequence[int] = DET_SIZES):
    """(faces, det_size): the first detection size in ``sizes`` that finds a face; ([], last size) if none."""
    faces, size = [], sizes[0]
    try:
        for size in sizes:
            faces = model.faces(image_bgr, size)
            if faces:
                break
    finally:
        model.set_det_size(sizes[0])
    return faces, size


def reference_identity(
    image_rgb: np.ndarray,
    model: AntelopeV2,
    image_name: str = "the reference image",
    allow_no_face: bool = False,
    size: Optional[tuple[int, int]] = None,
    det_sizes: Sequence[int] = DET_SIZES,
) -> Optional[ReferenceIdentity]:
    """Identity of the largest face in ``image_rgb`` ((H, W, 3) uint8 RGB; converted to BGR here).

    ``size`` = (w, h) resizes first (StableAnimator's training did, to the generation size). Raises
    NoFaceError naming ``image_name`` when no face is found, or returns None if ``allow_no_face``.
    """
    image = check_rgb_image(image_rgb, image_name)
    if size is not None:
        image = cv2.resize(image, (int(size[0]), int(size[1])))
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    faces, det_size = detect_with_ladder(model, bgr, det_sizes)
    faces = [f for f in faces if getattr(f, "embedding", None) is not None]
    if not faces:
        if allow_no_face:
            log.warning("no face found in %s: continuing without an identity, as requested", image_name)
            return None
        raise NoFaceError(
            f"No face found in {image_name} (insightface antelopev2, detection sizes {det_sizes[0]} to "
            f"{det_sizes[-1]} px). Use a picture where the face is clearly visible, or choose the no-identity mode."
        )
    face = largest_face(faces)
    if len(faces) > 1:
        x0, y0, x1, y1 = (int(v) for v in face.bbox)
        log.info("%s: %d faces found; using the largest (x %d..%d, y %d..%d)", image_name, len(faces), x0, x1, y0, y1)
    if det_size != det_sizes[0]:
        log.info("%s: face found at detection size %d", image_name, det_size)
    return ReferenceIdentity(
        embedding=np.asarray(face.embedding, dtype=np.float32).reshape(-1),
        box=np.asarray(face.bbox, dtype=np.float32),
        landmarks=np.asarray(face.kps, dtype=np.float32),
        det_score=float(face.det_score),
        num_faces=len(faces),
        det_size=int(det_size),
    )
