"""The reference image's ArcFace identity (glintr100 via insightface antelopev2), as StableAnimator uses it.

Conventions, checked against the official code:

* the **raw** 512-d embedding (``face.embedding``, not ``normed_embedding``) of the face with the largest box;
* channel order (``channels``): ``training`` (default) feeds insightface **BGR**, as StableAnimator's training
  data loader does (``animation_dataset.py:140-143``, the BGR image ``cv2.imread`` returns, after resizing to the
  training resolution): the face encoder learnt from BGR embeddings. ``official_inference`` reproduces
  ``inference_basic.py:342-344`` / ``inference_op.py``, which convert the BGR image with ``COLOR_RGB2BGR`` and so
  hand insightface RGB. Pass ``size`` to resize first, as training did;
* no face (``no_face``): ``error`` (default) raises NoFaceError naming the image after a detection ladder
  (640 px, then smaller, as cubiq's InstantID does, which finds large close-up faces); ``zero_tokens`` returns
  None, the explicit no-identity mode (zero face tokens, chosen by the caller); ``official`` does what
  ``inference_basic.py:351-361`` does: detect at 640 px only, then retry on a face aligned by a 5-point
  landmark model (facexlib's RetinaFace there, 512 px FFHQ-template crop) where one is given, then a zero
  512-d *embedding*, which the face encoder turns into non-zero tokens (what training saw for faceless images).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ..errors import InputError, NoFaceError
from .antelopev2 import AntelopeV2

log = logging.getLogger(__name__)

DET_SIZES = tuple(range(640, 128, -64))  # 640, 576, ..., 192
OFFICIAL_DET_SIZES = (640,)  # face_model.py:14, det_size=(640, 640)
ARCFACE_CHANNELS = ("training", "official_inference")
NO_FACE_POLICIES = ("error", "zero_tokens", "official")
EMBEDDING_DIM = 512
# facexlib FaceRestoreHelper(face_size=512, crop_ratio=(1, 1)): its 5-point FFHQ template (eyes, nose, mouth
# corners) and the grey it pads the warped crop with
ALIGN_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                               [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
ALIGN_BORDER = (135, 133, 132)
# image -> five landmarks (x, y) of the face to use (facexlib: the one nearest the centre), or None
LandmarkModel = Callable[[np.ndarray], Optional[np.ndarray]]


@dataclass
class ReferenceIdentity:
    embedding: np.ndarray  # (512,) float32, raw (not L2-normalised)
    box: Optional[np.ndarray]  # (4,) x0, y0, x1, y1 in pixels of the image given; None if no face was detected
    landmarks: Optional[np.ndarray]  # (5, 2) eyes, nose, mouth corners
    det_score: float
    num_faces: int
    det_size: int
    source: str = "detected"  # or "aligned_retry", "zero_embedding" (the official no-face fallbacks)
    face_boxes: tuple = ()  # every detected face's (x0, y0, x1, y1), for the official reference mask


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


def align_face_512(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """facexlib's ``align_warp_face``: similarity (LMEDS) onto the 512 px template, constant grey border."""
    matrix = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32).reshape(5, 2), ALIGN_TEMPLATE_512,
                                         method=cv2.LMEDS)[0]
    return cv2.warpAffine(image, matrix, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=ALIGN_BORDER)


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def reference_identity(
    image_rgb: np.ndarray,
    model: AntelopeV2,
    image_name: str = "the reference image",
    no_face: str = "error",
    size: Optional[tuple[int, int]] = None,
    det_sizes: Optional[Sequence[int]] = None,
    channels: str = "training",
    landmark_model: Optional[LandmarkModel] = None,
) -> Optional[ReferenceIdentity]:
    """Identity of the largest face in ``image_rgb`` ((H, W, 3) uint8 RGB; channel order per ``channels``).

    ``size`` = (w, h) resizes first (StableAnimator's training did, to the generation size). Without a face:
    NoFaceError naming ``image_name`` (``no_face="error"``), None (``"zero_tokens"``), or the official
    fallbacks (``"official"``; ``landmark_model`` enables the aligned retry). ``det_sizes`` defaults to the
    ladder, or to 640 px alone for ``no_face="official"``.
    """
    _check_choice(no_face, NO_FACE_POLICIES, "no_face")
    _check_choice(channels, ARCFACE_CHANNELS, "ArcFace channels")
    if det_sizes is None:
        det_sizes = OFFICIAL_DET_SIZES if no_face == "official" else DET_SIZES
    image = check_rgb_image(image_rgb, image_name)
    if size is not None:
        image = cv2.resize(image, (int(size[0]), int(size[1])))
    # the official scripts' COLOR_RGB2BGR on a BGR image: insightface receives RGB
    fed = image if channels == "official_inference" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    faces, det_size = detect_with_ladder(model, fed, det_sizes)
    faces = [f for f in faces if getattr(f, "embedding", None) is not None]
    if not faces:
        if no_face == "official":
            return _official_fallback(fed, model, image_name, landmark_model, det_size)
        if no_face == "zero_tokens":
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
        face_boxes=tuple(np.asarray(f.bbox, dtype=np.float32) for f in faces),
    )


def _official_fallback(fed: np.ndarray, model: AntelopeV2, image_name: str,
                       landmark_model: Optional[LandmarkModel], det_size: int) -> ReferenceIdentity:
    """``inference_basic.py:351-361``: aligned retry, else ``np.zeros(512)`` (encoded like any embedding)."""
    points = landmark_model(fed) if landmark_model is not None else None
    if points is not None:
        log.warning("no face found in %s by insightface; using the embedding of the landmark-aligned face "
                    "(the official fallback)", image_name)
        return ReferenceIdentity(model.embed_aligned(align_face_512(fed, points)), None,
                                 np.asarray(points, np.float32).reshape(5, 2), 0.0, 0, int(det_size), "aligned_retry")
    log.warning("no face found in %s%s: using a zero ArcFace embedding, as the official code does (the video "
                "will not keep the identity)", image_name,
                "" if landmark_model is not None else " (no landmark model for the aligned retry)")
    return ReferenceIdentity(np.zeros(EMBEDDING_DIM, np.float32), None, None, 0.0, 0, int(det_size),
                             "zero_embedding")
