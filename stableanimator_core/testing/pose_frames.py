"""Synthetic DWPose results for tests: a standing person and whole-body frames built around it."""

from __future__ import annotations

import numpy as np

from ..pose.keypoints import PoseFrame

# an OpenPose-ordered standing person in pixels (nose, neck, R arm, L arm, R leg, L leg, eyes, ears)
PERSON = np.array([
    [100, 40], [100, 70], [75, 72], [65, 110], [60, 145], [125, 72], [135, 110], [140, 145],
    [88, 150], [86, 200], [85, 250], [112, 150], [114, 200], [115, 250], [95, 35], [105, 35], [90, 38], [110, 38],
], dtype=np.float64)


def make_frame(body_px, width, height, scores=None, people=1, seed=0) -> PoseFrame:
    """``people`` copies of ``body_px`` (pixels), with face and hand points scattered around nose and wrists."""
    rng = np.random.default_rng(seed)
    body = np.broadcast_to(np.asarray(body_px, float) / [width, height], (people, 18, 2)).copy()
    nose, wrists = body[:, 0:1], body[:, [7, 4]]
    face = nose + rng.uniform(-0.02, 0.02, (people, 68, 2))
    hands = wrists[:, :, None] + rng.uniform(-0.02, 0.02, (people, 2, 21, 2))
    s = np.full((people, 18), 0.9) if scores is None else np.broadcast_to(scores, (people, 18)).copy()
    return PoseFrame(body, s, face, np.full((people, 68), 0.8), hands, np.full((people, 2, 21), 0.7), width, height)
