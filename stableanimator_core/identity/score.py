"""Identity readout: how well each generated frame keeps the reference identity (CSIM, as the paper reports).

Per frame: insightface antelopev2 detection (largest face), glintr100 ArcFace embedding, cosine similarity to
the reference face's embedding. Frames without a detected face get no score (they are marked in the plot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from .reference import check_rgb_image, largest_face


@dataclass
class IdentityScores:
    scores: list[Optional[float]]

    @property
    def valid(self) -> list[float]:
        return [s for s in self.scores if s is not None]

    @property
    def mean(self) -> Optional[float]:
        return float(np.mean(self.valid)) if self.valid else None

    @property
    def minimum(self) -> Optional[float]:
        return min(self.valid) if self.valid else None

    @property
    def worst_frame(self) -> Optional[int]:
        if not self.valid:
            return None
        return min((s, i) for i, s in enumerate(self.scores) if s is not None)[1]

    def summary(self) -> str:
        missing = sum(s is None for s in self.scores)
        if not self.valid:
            return f"identity: no face found in any of {len(self.scores)} frames"
        return (f"identity (ArcFace cosine): mean {self.mean:.3f}, min {self.minimum:.3f} at frame "
                f"{self.worst_frame}, {len(self.scores) - missing}/{len(self.scores)} frames with a face, "
                f"{missing} without")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def score_frames(frames_rgb: Sequence[np.ndarray], reference_embedding: np.ndarray, model) -> IdentityScores:
    """``frames_rgb``: ``(H, W, 3)`` uint8 RGB; fed to insightface as BGR like the reference embedding."""
    scores: list[Optional[float]] = []
    for i, frame in enumerate(frames_rgb):
        bgr = cv2.cvtColor(check_rgb_image(frame, f"frame {i}"), cv2.COLOR_RGB2BGR)
        face = largest_face([f for f in model.faces(bgr) if getattr(f, "embedding", None) is not None])
        scores.append(None if face is None else cosine(face.embedding, reference_embedding))
    return IdentityScores(scores)


# plot colours (RGB)
_LINE, _MEAN, _MISSING, _AXIS, _BG = (40, 110, 220), (120, 120, 120), (220, 50, 50), (30, 30, 30), (255, 255, 255)


def plot_scores(result: IdentityScores, width: int = 640, height: int = 260) -> np.ndarray:
    """Similarity over frames as an ``(height, width, 3)`` uint8 RGB image; frames without a face are red x's."""
    img = np.full((height, width, 3), _BG, np.uint8)
    left, right, top, bottom = 48, 12, 28, 30
    x_span, y_span = width - left - right, height - top - bottom
    n = len(result.scores)
    lo = min(0.0, (result.minimum or 0.0) - 0.05)
    to_x = lambda i: int(round(left + (i / max(n - 1, 1)) * x_span))  # noqa: E731
    to_y = lambda s: int(round(top + (1.0 - (s - lo) / (1.0 - lo)) * y_span))  # noqa: E731
    cv2.rectangle(img, (left, top), (left + x_span, top + y_span), _AXIS, 1)
    for tick in np.linspace(lo, 1.0, 5):
        y = to_y(tick)
        cv2.line(img, (left - 4, y), (left, y), _AXIS, 1)
        cv2.putText(img, f"{tick:.2f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _AXIS, 1, cv2.LINE_AA)
    for i in range(0, n, max(1, n // 10)):
        cv2.putText(img, str(i), (to_x(i) - 4, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _AXIS, 1, cv2.LINE_AA)
    if result.mean is not None:
        y = to_y(result.mean)
        cv2.line(img, (left, y), (left + x_span, y), _MEAN, 1, cv2.LINE_AA)
    points = [(to_x(i), to_y(s)) for i, s in enumerate(result.scores) if s is not None]
    for a, b in zip(points, points[1:]):
        cv2.line(img, a, b, _LINE, 2, cv2.LINE_AA)
    for p in points:
        cv2.circle(img, p, 3, _LINE, -1, cv2.LINE_AA)
    for i, s in enumerate(result.scores):
        if s is None:
            x, y = to_x(i), top + y_span - 6
            cv2.line(img, (x - 4, y - 4), (x + 4, y + 4), _MISSING, 2)
            cv2.line(img, (x - 4, y + 4), (x + 4, y - 4), _MISSING, 2)
    cv2.putText(img, result.summary(), (left, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _AXIS, 1, cv2.LINE_AA)
    return img
