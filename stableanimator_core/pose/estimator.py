"""RTMPose whole-body estimator as DWPose runs it (``dw-ll_ucoco_384.onnx``, SimCC head).

Per person box: centre and scale of the box padded x1.25, scale widened to the model's 3:4 aspect, an affine
crop to 288x384 (bilinear, black outside the image), ImageNet mean/std normalisation in RGB order; SimCC
decode = arg-max of the x and y logits / 2 (split ratio 2.0), score = the smaller of the two maxima, then the
inverse of the crop. The affine matrix is built from three float32 point pairs with
``cv2.getAffineTransform`` exactly as MMPose does, because a matrix computed in closed form differs in the
last bits and would move some crops (and so keypoints) by a fraction of a pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])
BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0


def box_center_scale(box: np.ndarray, padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """``x0, y0, x1, y1`` -> centre (x, y) and padded size (w, h)."""
    x0, y0, x1, y1 = box
    center = np.array([x0 + x1, y0 + y1]) * 0.5
    scale = np.array([x1 - x0, y1 - y0]) * padding
    return center, scale


def fix_aspect(scale: np.ndarray, aspect: float) -> np.ndarray:
    """Grow (w, h) along one axis so that w / h == aspect."""
    w, h = scale[0], scale[1]
    return np.array([w, w / aspect]) if w > h * aspect else np.array([h * aspect, h])


def crop_matrix(center: np.ndarray, scale: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine matrix mapping the box (centre, size) onto an ``out_size`` = (w, h) crop.

    Three point pairs: the centre, the point half a box-width above it, and that vector turned 90 degrees.
    """
    out_w, out_h = out_size

    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return b + np.array([-d[1], d[0]], dtype=a.dtype)

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    src[2] = third(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = np.array([out_w * 0.5, out_h * 0.5]) + np.array([0.0, out_w * -0.5])
    dst[2] = third(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def crop_person(
    image: np.ndarray, box: np.ndarray, out_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised (h, w, 3) float crop of ``box`` plus the centre and (aspect-fixed) scale that undo it."""
    center, scale = box_center_scale(np.asarray(box))
    scale = fix_aspect(scale, out_size[0] / out_size[1])
    matrix = crop_matrix(center, scale, out_size)
    crop = cv2.warpAffine(image, matrix, (int(out_size[0]), int(out_size[1])), flags=cv2.INTER_LINEAR)
    return (crop - MEAN) / STD, center, scale


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = SIMCC_SPLIT_RATIO):
    """SimCC logits ``(K, Wx)``, ``(K, Wy)`` -> keypoints ``(K, 2)`` in crop pixels and scores ``(K,)``.

    A joint whose best logit is <= 0 gets location -1 (before the division), as MMPose marks it.
    """
    locs = np.stack((np.argmax(simcc_x, axis=1), np.argmax(simcc_y, axis=1)), axis=-1).astype(np.float32)
    scores = np.minimum(np.amax(simcc_x, axis=1), np.amax(simcc_y, axis=1))
    locs[scores <= 0.0] = -1
    return locs / split_ratio, scores


def crop_to_image(points: np.ndarray, center: np.ndarray, scale: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Crop-pixel coordinates back to image pixels (the inverse of ``crop_matrix``)."""
    return points / np.array(out_size) * scale + center - scale / 2


def estimate_poses(session, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """133 COCO-WholeBody keypoints per box: ``(N, 133, 2)`` image pixels (float64) and ``(N, 133)`` scores.

    With no boxes the whole image is used as one box, as DWPose does.
    """
    h, w = session.get_inputs()[0].shape[2:]
    out_size = (int(w), int(h))
    if len(boxes) == 0:
        boxes = np.array([[0, 0, image.shape[1], image.shape[0]]])
    output_names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    all_points, all_scores = [], []
    for box in boxes:
        crop, center, scale = crop_person(image, box, out_size)
        blob = crop.transpose(2, 0, 1)[None].astype(np.float32)
        simcc_x, simcc_y = session.run(output_names, {input_name: blob})[:2]
        points, scores = decode_simcc(simcc_x[0], simcc_y[0])
        all_points.append(crop_to_image(points, center, scale, out_size))
        all_scores.append(scores)
    return np.array(all_points), np.array(all_scores)
