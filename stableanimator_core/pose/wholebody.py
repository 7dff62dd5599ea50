"""DWPose whole-body: YOLOX boxes -> RTMPose keypoints -> OpenPose order, as StableAnimator's tool returns them.

MMPose's COCO-WholeBody order (17 body, 6 feet, 68 face, 21 + 21 hands) becomes OpenPose's: a neck is
inserted at index 17 (mean of the shoulders; score 1 if both shoulders score > 0.3, else 0), then the body
joints are permuted into COCO-18 order (nose, neck, right arm, left arm, right leg, left leg, eyes, ears).
Coordinates are normalised by the image size, as ``DWposeDetectorAligned`` does.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import CheckpointError
from ..loading.onnx_backend import get_session
from .detector import Detections, detect_people
from .estimator import estimate_poses
from .keypoints import PoseFrame

# OpenPose slot <- MMPose slot (after the neck was inserted at 17)
_OPENPOSE_SLOTS = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]
_MMPOSE_SLOTS = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
LEFT_SHOULDER, RIGHT_SHOULDER = 5, 6  # MMPose indices


def to_openpose_order(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MMPose whole-body ``(N, 133, 2)``, ``(N, 133)`` -> ``(N, 134, 2)``, ``(N, 134)``: neck added, OpenPose order."""
    info = np.concatenate((points, scores[..., None]), axis=-1)
    neck = np.mean(info[:, [LEFT_SHOULDER, RIGHT_SHOULDER]], axis=1)
    neck[:, 2] = np.logical_and(info[:, LEFT_SHOULDER, 2] > 0.3, info[:, RIGHT_SHOULDER, 2] > 0.3).astype(int)
    info = np.insert(info, 17, neck, axis=1)
    info[:, _OPENPOSE_SLOTS] = info[:, _MMPOSE_SLOTS]
    return info[..., :2], info[..., 2]


def frame_from_wholebody(points: np.ndarray, scores: np.ndarray, width: int, height: int,
                         detections: Detections) -> PoseFrame:
    """Split 134 OpenPose-ordered points (pixels) into a normalised ``PoseFrame``."""
    pts = points.copy()
    pts[..., 0] /= float(width)
    pts[..., 1] /= float(height)
    hands = np.stack([pts[:, 92:113], pts[:, 113:134]], axis=1)
    hand_scores = np.stack([scores[:, 92:113], scores[:, 113:134]], axis=1)
    return PoseFrame(
        body=pts[:, :18], body_scores=scores[:, :18], face=pts[:, 24:92], face_scores=scores[:, 24:92],
        hands=hands, hand_scores=hand_scores, width=int(width), height=int(height),
        boxes=detections.boxes, detected=len(detections.boxes) > 0,
    )


def _output_count(session) -> int:
    return len(session.get_outputs())


def check_roles(detector, estimator, detector_path: str, estimator_path: str) -> None:
    """YOLOX has one output (boxes), RTMPose two (SimCC x and y): catch swapped or foreign files before a frame
    runs, instead of onnxruntime's shape error in the middle of the video."""
    det, est = _output_count(detector), _output_count(estimator)
    if det == 2 and est == 1:
        raise CheckpointError(f"the DWPose detector and estimator are swapped: {os.path.basename(detector_path)} is "
                              f"the pose estimator and {os.path.basename(estimator_path)} the person detector. "
                              f"Choose yolox_l.onnx as detector and dw-ll_ucoco_384.onnx as estimator.")
    if det != 1:
        raise CheckpointError(f"{os.path.basename(detector_path)} is not a YOLOX person detector ({det} outputs, "
                              f"expected 1). Choose DWPose/yolox_l.onnx as detector.")
    if est < 2:
        raise CheckpointError(f"{os.path.basename(estimator_path)} is not a DWPose whole-body estimator ({est} "
                              f"output(s), expected simcc_x and simcc_y). Choose DWPose/dw-ll_ucoco_384.onnx.")


class DWPose:
    """YOLOX + RTMPose whole-body estimator on onnxruntime.

    ``provider`` is ``"auto" | "cuda" | "cpu"`` (see ``onnx_backend.resolve_providers``). Calling it on an
    (H, W, 3) uint8 RGB image returns every person found, best detection first. When the detector finds
    nobody, the pose model runs on the whole image (as DWPose does) and the frame is marked
    ``detected=False`` so that callers can treat it as "no person".
    """

    def __init__(self, detector_path: str, estimator_path: str, provider: str = "auto") -> None:
        self.detector = get_session(detector_path, provider)
        self.estimator = get_session(estimator_path, provider)
        check_roles(self.detector, self.estimator, detector_path, estimator_path)

    def __call__(self, image: np.ndarray) -> PoseFrame:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"DWPose needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        detections = detect_people(self.detector, image)
        points, scores = estimate_poses(self.estimator, image, detections.boxes)
        points, scores = to_openpose_order(points, scores)
        h, w = image.shape[:2]
        return frame_from_wholebody(points, scores, w, h, detections)
