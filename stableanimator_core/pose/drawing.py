"""DWPose skeleton drawing exactly as StableAnimator's ``DWPose/skeleton_extraction.py`` draws it.

The PoseNet was trained on these pictures, so every detail is kept: a canvas of the reference size scaled so
its short side is 2160 px; body limbs as filled ellipses (half-width 4 px) in the OpenPose palette times
``score_a * score_b`` when both scores are >= 0.3; the whole canvas times 0.6 (truncated); joints as radius-4
discs in the palette times the score when the score is > 0.3; hand edges as 2-px lines in HSV hues times
``int(score_a * score_b * 255)`` and hand points as radius-4 blue discs (no score threshold, but points at
pixel 0 or left/above the canvas are skipped); face points as radius-3 grey discs; finally a bilinear resize to
the reference size. Channel order: the arrays here are RGB and equal the PNGs the official tool writes
(its BGR/RGB swap and ``cv2.imwrite`` cancel out), so limb 0 (neck to right shoulder) is pure red.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .keypoints import SCORE_THRESHOLD, PoseFrame

REF_SIZE = 2160
STICK_WIDTH = 4
JOINT_RADIUS = 4
HAND_POINT_RADIUS = 4
FACE_POINT_RADIUS = 3
HAND_LINE_THICKNESS = 2
EPS = 0.01  # hand/face points must lie right of and below pixel 0 (the check runs on integer pixels)

# OpenPose limbs (0-based), only the first 17 of OpenPose's 19 are drawn (no ear-shoulder links)
BODY_LIMBS = [
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
]
BODY_COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]
HAND_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
]

# int(v * 0.6) for every uint8 value: the official float multiply-and-truncate, as a table
_DIM_LUT = (np.arange(256, dtype=np.uint8) * 0.6).astype(np.uint8)


def hue_to_rgb(hue: float) -> np.ndarray:
    """Fully saturated, full-value HSV -> RGB in [0, 1], with matplotlib's ``hsv_to_rgb`` arithmetic.

    The same float operations matter: the line colour is this times an integer score, rounded by OpenCV.
    """
    s = v = 1.0
    i = int(hue * 6.0)
    f = (hue * 6.0) - i
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return np.array([r, g, b], dtype=np.float64)


HAND_COLORS = [hue_to_rgb(e / float(len(HAND_EDGES))) for e in range(len(HAND_EDGES))]


def canvas_size(height: int, width: int, ref_size: int = REF_SIZE) -> tuple[int, int]:
    """(h, w) of the drawing canvas: the short side scaled to ``ref_size``."""
    short = min(height, width)
    ratio = (ref_size / short) if short != ref_size else 1
    return int(height * ratio), int(width * ratio)


def _drawable(*values: float) -> bool:
    # keypoints from other packs may hold NaN or absurd values; the official code would crash on them
    return all(math.isfinite(v) and abs(v) < 1e7 for v in values)


def draw_body(canvas: np.ndarray, frame: PoseFrame) -> np.ndarray:
    """Limbs, the 0.6 dimming, then joints (returns the new canvas)."""
    h, w = canvas.shape[:2]
    for limb, (a, b) in enumerate(BODY_LIMBS):
        for n in range(frame.num_people):
            sa, sb = frame.body_scores[n, a], frame.body_scores[n, b]
            if sa < SCORE_THRESHOLD or sb < SCORE_THRESHOLD:
                continue
            xa, xb = frame.body[n, a, 0] * float(w), frame.body[n, b, 0] * float(w)
            ya, yb = frame.body[n, a, 1] * float(h), frame.body[n, b, 1] * float(h)
            if not _drawable(xa, xb, ya, yb):
                continue
            cx, cy = np.mean([xa, xb]), np.mean([ya, yb])
            length = ((ya - yb) ** 2 + (xa - xb) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            polygon = cv2.ellipse2Poly((int(cx), int(cy)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
            alpha = sa * sb
            cv2.fillConvexPoly(canvas, polygon, [int(c * alpha) for c in BODY_COLORS[limb]])
    canvas = cv2.LUT(canvas, _DIM_LUT)
    for j in range(len(BODY_COLORS)):
        for n in range(frame.num_people):
            score = frame.body_scores[n, j]
            if not score > SCORE_THRESHOLD:
                continue
            x, y = frame.body[n, j, 0] * w, frame.body[n, j, 1] * h
            if _drawable(x, y):
                color = [int(c * score) for c in BODY_COLORS[j]]
                cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, color, thickness=-1)
    return canvas


def draw_hands(canvas: np.ndarray, frame: PoseFrame) -> np.ndarray:
    """All left hands, then all right hands (the official order), edges before points."""
    h, w = canvas.shape[:2]
    for side in (0, 1):
        for n in range(frame.num_people):
            pts, scores = frame.hands[n, side], frame.hand_scores[n, side]
            if not _drawable(*pts.ravel()):
                continue
            px = [(int(x * w), int(y * h)) for x, y in pts]
            for e, (a, b) in enumerate(HAND_EDGES):
                (x1, y1), (x2, y2) = px[a], px[b]
                level = int(scores[a] * scores[b] * 255)
                if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
                    cv2.line(canvas, (x1, y1), (x2, y2), HAND_COLORS[e] * level, thickness=HAND_LINE_THICKNESS)
            for (x, y), score in zip(px, scores):
                if x > EPS and y > EPS:
                    cv2.circle(canvas, (x, y), HAND_POINT_RADIUS, (0, 0, int(score * 255)), thickness=-1)
    return canvas


def draw_face(canvas: np.ndarray, frame: PoseFrame) -> np.ndarray:
    h, w = canvas.shape[:2]
    for n in range(frame.num_people):
        for (x, y), score in zip(frame.face[n], frame.face_scores[n]):
            if not _drawable(x * w, y * h):
                continue
            px, py = int(x * w), int(y * h)
            level = int(score * 255)
            if px > EPS and py > EPS:
                cv2.circle(canvas, (px, py), FACE_POINT_RADIUS, (level, level, level), thickness=-1)
    return canvas


def draw_pose(frame: PoseFrame, height: int, width: int, ref_size: int = REF_SIZE) -> np.ndarray:
    """The skeleton picture of ``frame`` at ``height`` x ``width``: (H, W, 3) uint8 RGB.

    ``frame`` coordinates are normalised, so they are drawn relative to this canvas whatever image they
    were detected on (the official tool draws driving poses on the reference-size canvas).
    """
    canvas = np.zeros(canvas_size(height, width, ref_size) + (3,), dtype=np.uint8)
    canvas = draw_body(canvas, frame)
    canvas = draw_hands(canvas, frame)
    canvas = draw_face(canvas, frame)
    return cv2.resize(canvas, (int(width), int(height)))
