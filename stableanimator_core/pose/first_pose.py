"""Does the first driving pose match the reference photo's pose?

StableAnimator starts the video from the reference photo; when the first (aligned) driving pose is far from
the reference's pose, the first frames morph the person into it and identity suffers (official issue #89,
the maintainer's advice in #91). The check measures, after alignment, the mean distance between the body
joints both poses show, in units of the reference body's size (the larger side of its joints' bounding box),
and warns above a threshold with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .extraction import PoseSequence
from .keypoints import SCORE_THRESHOLD, PoseFrame

BODY_JOINTS = ("nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
               "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
               "right eye", "left eye", "right ear", "left ear")
DEFAULT_THRESHOLD = 0.06  # e.g. both arms raised in one pose and down in the other: ~0.1
MIN_JOINTS = 4


@dataclass
class FirstPoseCheck:
    distance: Optional[float]  # mean joint distance / reference body size; None when it cannot be measured
    joints: int  # joints seen in both poses
    worst_joint: Optional[str]
    worst_distance: Optional[float]
    threshold: float
    warning: bool
    message: str


def _pixels(frame: PoseFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    return frame.body[n] * [frame.width, frame.height], frame.body_scores[n] > SCORE_THRESHOLD


def _advice(align: str) -> str:
    tips = ["trim the driving video so it starts in the reference's pose",
            "or use a reference photo in the first driving frame's pose"]
    if align != "limbs":
        tips.insert(0, "try align = limbs")
    return "; ".join(tips)


def measure_first_pose(reference: PoseFrame, first: PoseFrame) -> tuple[Optional[float], int, Optional[int],
                                                                          Optional[float]]:
    """(mean distance, joints compared, worst joint, its distance) between the reference's first person and the
    closest person of ``first`` (both normalised to the same canvas)."""
    if reference.num_people == 0 or first.num_people == 0:
        return None, 0, None, None
    ref, ref_seen = _pixels(reference, 0)
    size = 0.0
    if ref_seen.sum() >= 2:
        span = ref[ref_seen].max(axis=0) - ref[ref_seen].min(axis=0)
        size = float(span.max())
    best = (None, 0, None, None)
    for n in range(first.num_people):
        drv, drv_seen = _pixels(first, n)
        both = np.flatnonzero(ref_seen & drv_seen)
        if len(both) < MIN_JOINTS or size <= 0:
            continue
        dist = np.linalg.norm(ref[both] - drv[both], axis=1) / size
        worst = int(np.argmax(dist))
        if best[0] is None or dist.mean() < best[0]:
            best = (float(dist.mean()), len(both), int(both[worst]), float(dist[worst]))
    return best


def check_first_pose(sequence: PoseSequence, align: str = "global",
                     threshold: float = DEFAULT_THRESHOLD) -> FirstPoseCheck:
    """Compare output frame 0's aligned pose with the reference pose; ``message`` is one line for the UI/log."""
    first = sequence.aligned[0]
    if sequence.reference.num_people == 0:
        return FirstPoseCheck(None, 0, None, None, threshold, False,
                              "first-pose check: skipped (no person in the reference image)")
    if first.num_people == 0:
        return FirstPoseCheck(None, 0, None, None, threshold, True,
                              "first-pose check: the first driving frame shows no person, so the video cannot start "
                              "from the reference pose: trim the driving video so it starts with the person visible")
    distance, joints, worst, worst_distance = measure_first_pose(sequence.reference, first)
    if distance is None:
        return FirstPoseCheck(None, joints, None, None, threshold, False,
                              f"first-pose check: skipped (fewer than {MIN_JOINTS} body joints visible in both the "
                              f"reference and the first driving frame)")
    worst_name = BODY_JOINTS[worst]
    if distance <= threshold:
        return FirstPoseCheck(distance, joints, worst_name, worst_distance, threshold, False,
                              f"first-pose check: OK, mean keypoint distance {distance:.3f} of the body size after "
                              f"alignment ({joints} joints; warning above {threshold:.2f})")
    return FirstPoseCheck(
        distance, joints, worst_name, worst_distance, threshold, True,
        f"first-pose check: the first driving pose differs from the reference pose: mean keypoint distance "
        f"{distance:.3f} of the body size after alignment (above {threshold:.2f}; worst: {worst_name}, "
        f"{worst_distance:.2f}). StableAnimator starts from the reference photo, so the first frames morph "
        f"into the driving pose and identity suffers (official issue #89). To fix it: {_advice(align)}.",
    )
