"""YOLOX person detector as DWPose runs it (``yolox_l.onnx``).

Pre-processing: top-left letterbox into 640x640 filled with 114, bilinear resize by ``r = min(640/h, 640/w)``,
no normalisation, the image's channel order as given (DWPose passes RGB). Post-processing: grid decode over
strides 8/16/32, boxes divided by ``r``, class-aware NMS (IoU 0.45, score > 0.1), then person boxes with
score > 0.3. Numbers are computed in the same dtypes as StableAnimator's ``DWPose/dwpose_utils/onnxdet.py``
so that boxes, and therefore skeletons, match it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = (640, 640)  # (h, w)
PAD_VALUE = 114
STRIDES = (8, 16, 32)
NMS_IOU = 0.45
CANDIDATE_SCORE = 0.1
PERSON_SCORE = 0.3
PERSON_CLASS = 0


@dataclass
class Detections:
    """Person boxes ``(N, 4)`` ``x0, y0, x1, y1`` in image pixels, best first, and their scores (float64)."""

    boxes: np.ndarray
    scores: np.ndarray


def letterbox(image: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """``image`` (H, W, 3) uint8 resized into the top-left of a ``size`` canvas of 114; returns (canvas, r).

    A point ``p`` of the image lands at ``p * r`` of the canvas (no offset: the padding is right/bottom).
    """
    h, w = image.shape[:2]
    r = min(size[0] / h, size[1] / w)
    nh, nw = int(h * r), int(w * r)
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, r


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    cells, strides = [], []
    for s in STRIDES:
        xs, ys = np.meshgrid(np.arange(size[1] // s), np.arange(size[0] // s))
        cells.append(np.stack((xs, ys), 2).reshape(-1, 2))
        strides.append(np.full((cells[-1].shape[0], 1), s))
    return np.concatenate(cells, 0), np.concatenate(strides, 0)


def decode_boxes(raw: np.ndarray, r: float, size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX head output ``(A, 85)`` -> (boxes ``(A, 4)`` xyxy in image pixels, per-class scores ``(A, 80)``)."""
    grid, strides = _grid(size)
    pred = raw.astype(np.float32, copy=True)
    if pred.shape[0] != grid.shape[0]:
        raise ValueError(f"detector output has {pred.shape[0]} anchors, expected {grid.shape[0]} for a 640x640 input")
    # int64 grid arithmetic promotes to float64 and is stored back into float32, as in the reference code
    pred[:, :2] = (pred[:, :2] + grid) * strides
    pred[:, 2:4] = np.exp(pred[:, 2:4]) * strides
    half_w, half_h = pred[:, 2] / 2.0, pred[:, 3] / 2.0
    boxes = np.empty_like(pred[:, :4])
    boxes[:, 0] = pred[:, 0] - half_w
    boxes[:, 1] = pred[:, 1] - half_h
    boxes[:, 2] = pred[:, 0] + half_w
    boxes[:, 3] = pred[:, 1] + half_h
    boxes /= r
    return boxes, pred[:, 4:5] * pred[:, 5:]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS with the +1 pixel area convention of the YOLOX demo code; indices in descending score."""
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[overlap <= iou]
    return keep


def select_people(boxes: np.ndarray, class_scores: np.ndarray) -> Detections:
    """Person boxes after NMS. NMS is per class, so only the person class can affect person boxes."""
    scores = class_scores[:, PERSON_CLASS]
    candidates = scores > CANDIDATE_SCORE  # float32 comparison, as in the reference
    if not candidates.any():
        return Detections(np.zeros((0, 4)), np.zeros((0,)))
    cand_boxes, cand_scores = boxes[candidates], scores[candidates]
    keep = nms(cand_boxes, cand_scores, NMS_IOU)
    # the reference stacks kept boxes with float64 class ids, so the final threshold and everything
    # downstream (crop centre and scale) runs in float64
    kept_boxes, kept_scores = cand_boxes[keep].astype(np.float64), cand_scores[keep].astype(np.float64)
    person = kept_scores > PERSON_SCORE
    return Detections(kept_boxes[person], kept_scores[person])


def detect_people(session, image: np.ndarray) -> Detections:
    """Run the YOLOX ``session`` on an (H, W, 3) uint8 image (RGB, as DWPose feeds it)."""
    canvas, r = letterbox(image)
    blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
    raw = session.run(None, {session.get_inputs()[0].name: blob})[0][0]
    boxes, class_scores = decode_boxes(raw, r)
    return select_people(boxes, class_scores)
