"""First-pose check: fires when the first aligned driving pose is far from the reference pose, silent otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from stableanimator_core.pose import PoseFrame, sequence_from_poses
from stableanimator_core.pose.first_pose import DEFAULT_THRESHOLD, check_first_pose, measure_first_pose

STANDING = np.array([
    (0.50, 0.15), (0.50, 0.25), (0.42, 0.25), (0.40, 0.38), (0.39, 0.50), (0.58, 0.25), (0.60, 0.38), (0.61, 0.50),
    (0.46, 0.55), (0.46, 0.72), (0.46, 0.90), (0.54, 0.55), (0.54, 0.72), (0.54, 0.90),
    (0.48, 0.13), (0.52, 0.13), (0.46, 0.14), (0.54, 0.14),
])
ARMS_UP = STANDING.copy()
ARMS_UP[[3, 6]] = [(0.38, 0.14), (0.62, 0.14)]  # elbows
ARMS_UP[[4, 7]] = [(0.37, 0.03), (0.63, 0.03)]  # wrists


def frame(body: np.ndarray, width: int = 512, height: int = 512, scores: float = 0.9) -> PoseFrame:
    empty = PoseFrame.empty(width, height)
    return PoseFrame(body[None].copy(), np.full((1, 18), scores), np.zeros((1, 68, 2)), np.zeros((1, 68)),
                     np.zeros((1, 2, 21, 2)), np.zeros((1, 2, 21)), width, height, boxes=empty.boxes[:0])


def driving(first: np.ndarray, n: int = 6) -> list[PoseFrame]:
    """A driving clip filmed from further away (smaller, shifted person) on a landscape canvas."""
    def filmed(body):
        return frame(body * 0.7 + [0.2, 0.1], width=960, height=540)
    return [filmed(first)] + [filmed(ARMS_UP if i % 2 else STANDING) for i in range(1, n)]


@pytest.mark.parametrize("align", ["global", "limbs"])
def test_silent_when_the_first_pose_matches(align):
    seq = sequence_from_poses(frame(STANDING), driving(STANDING), align=align)
    check = check_first_pose(seq, align)
    assert not check.warning
    assert check.distance is not None and check.distance < DEFAULT_THRESHOLD / 2 and check.joints == 18
    assert "OK" in check.message and f"{check.distance:.3f}" in check.message


@pytest.mark.parametrize("align", ["global", "limbs"])
def test_fires_when_the_first_pose_differs(align):
    seq = sequence_from_poses(frame(STANDING), driving(ARMS_UP), align=align)
    check = check_first_pose(seq, align)
    assert check.warning and check.distance > DEFAULT_THRESHOLD
    assert check.worst_joint in ("right wrist", "left wrist")
    assert f"{check.distance:.3f}" in check.message and "#89" in check.message
    assert "trim the driving video" in check.message
    assert ("align = limbs" in check.message) == (align != "limbs")


def test_distance_is_in_units_of_the_reference_body():
    ref = frame(STANDING)
    moved = STANDING.copy()
    moved[4, 1] += 0.077 * 3  # right wrist 3/10 of the body height (0.77 of the canvas) lower
    distance, joints, worst, worst_distance = measure_first_pose(ref, frame(moved))
    assert joints == 18 and worst == 4
    assert worst_distance == pytest.approx(0.3) and distance == pytest.approx(0.3 / 18)


def test_first_frame_without_a_person_warns_and_no_reference_person_skips():
    seq = sequence_from_poses(frame(STANDING), [PoseFrame.empty(960, 540)] + driving(STANDING)[1:])
    check = check_first_pose(seq)
    assert check.warning and "no person" in check.message and check.distance is None
    seq = sequence_from_poses(PoseFrame.empty(512, 512), driving(STANDING), align="none")
    check = check_first_pose(seq, "none")
    assert not check.warning and "skipped" in check.message
