"""The official skeleton drawing, checked pixel by pixel on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from stableanimator_core.pose.drawing import HAND_COLORS, _DIM_LUT, canvas_size, draw_pose, hue_to_rgb
from stableanimator_core.pose.keypoints import PoseFrame

S = 2160  # a 2160x2160 reference: canvas scale 1, so canvas pixels are output pixels


def _frame() -> PoseFrame:
    f = PoseFrame(np.zeros((1, 18, 2)), np.zeros((1, 18)), np.zeros((1, 68, 2)), np.zeros((1, 68)),
                  np.zeros((1, 2, 21, 2)), np.zeros((1, 2, 21)), S, S)

    def body(j, x, y, s):
        f.body[0, j], f.body_scores[0, j] = (x / S, y / S), s

    body(1, 100, 100, 1.0)  # neck
    body(2, 140, 100, 1.0)  # right shoulder: limb 0 (neck - right shoulder), pure red
    body(9, 300, 300, 0.5)  # right knee
    body(10, 300, 360, 0.5)  # right ankle: limb 8 at alpha 0.25
    body(11, 500, 500, 0.29)  # left hip below 0.3: no limb, no joint
    body(12, 500, 560, 0.9)  # left knee: joint only
    left, right = f.hands[0, 0], f.hands[0, 1]
    left[0], left[1], left[5], left[6] = (700 / S, 700 / S), (740 / S, 700 / S), (700 / S, 900 / S), (740 / S, 900 / S)
    f.hand_scores[0, 0, [0, 1, 5, 6]] = 1.0
    right[0], right[1] = (800 / S, 800 / S), (840 / S, 800 / S)
    f.hand_scores[0, 1, [0, 1]] = 0.5
    f.face[0, 0], f.face_scores[0, 0] = (1000 / S, 1000 / S), 0.5
    return f


@pytest.fixture(scope="module")
def picture():
    return draw_pose(_frame(), S, S)


def px(img, x, y):
    return tuple(int(v) for v in img[y, x])


def test_body_limbs_and_joints(picture):
    assert picture.shape == (S, S, 3) and picture.dtype == np.uint8
    # limb 0: ellipse centre (120, 100), half-axes (20, 4); red 255 dimmed by 0.6 -> 153
    assert px(picture, 120, 100) == (153, 0, 0)
    assert px(picture, 110, 100) == (153, 0, 0)
    assert px(picture, 120, 104) == (153, 0, 0) and px(picture, 120, 96) == (153, 0, 0)  # ellipse vertices
    assert px(picture, 120, 105) == (0, 0, 0) and px(picture, 120, 95) == (0, 0, 0)
    # joints are drawn after the dimming, in full palette colour x score
    assert px(picture, 100, 100) == (255, 85, 0)  # neck
    assert px(picture, 140, 100) == (255, 170, 0)  # right shoulder
    assert px(picture, 95, 100) == (0, 0, 0)
    # limb 8 (0, 255, 170) x 0.25 -> (0, 63, 42) -> x 0.6 truncated -> (0, 37, 25); joints at score 0.5
    assert px(picture, 300, 330) == (0, 37, 25)
    assert px(picture, 300, 300) == (0, 127, 127) and px(picture, 300, 360) == (0, 85, 127)
    # a 0.29 score: neither the limb nor that joint; the other end (0.9) still gets its joint
    assert px(picture, 500, 530) == (0, 0, 0) and px(picture, 500, 500) == (0, 0, 0)
    assert px(picture, 500, 560) == (0, 0, 229)


def test_hands(picture):
    # edge 0 hue 0 -> (255, 0, 0); edge 4 (wrist to index base) hue 0.2 -> (204, 255, 0)
    assert px(picture, 720, 700) == (255, 0, 0)
    assert px(picture, 700, 800) == (204, 255, 0)
    # edge 5 hue 0.25 -> (127.5, 255, 0): OpenCV rounds half to even -> 128
    assert px(picture, 720, 900) == (128, 255, 0)
    assert px(picture, 720, 705) == (0, 0, 0)  # 2-px lines
    assert px(picture, 700, 700) == (0, 0, 255) and px(picture, 740, 900) == (0, 0, 255)  # points, blue
    # right hand at score 0.5: line level int(0.25 * 255) = 63, points int(0.5 * 255) = 127
    assert px(picture, 820, 800) == (63, 0, 0)
    assert px(picture, 800, 800) == (0, 0, 127)
    # points at pixel 0 are skipped, so nothing is drawn at the canvas corner
    assert px(picture, 0, 0) == (0, 0, 0) and px(picture, 2, 2) == (0, 0, 0)


def test_face(picture):
    assert px(picture, 1000, 1000) == (127, 127, 127)
    assert px(picture, 1000, 1003) == (127, 127, 127) and px(picture, 1003, 1000) == (127, 127, 127)
    assert px(picture, 1000, 1004) == (0, 0, 0)


def test_nothing_else_is_drawn(picture):
    mask = np.zeros((S, S), bool)
    for x0, y0, x1, y1 in [(90, 90, 150, 110), (290, 290, 310, 370), (490, 550, 510, 570), (690, 690, 750, 910),
                           (790, 790, 850, 810), (990, 990, 1010, 1010)]:
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    assert picture[~mask].max() == 0


def test_canvas_size_and_downscale():
    assert canvas_size(512, 512) == (2160, 2160)
    assert canvas_size(768, 512) == (3240, 2160)
    assert canvas_size(300, 420) == (2160, 3024)
    assert canvas_size(2160, 3000) == (2160, 3000)
    f = _frame()
    small = draw_pose(f, 540, 540)  # drawn at 2160, then a bilinear resize by 1/4
    assert small.shape == (540, 540, 3)
    assert px(small, 30, 25) == (153, 0, 0)  # samples canvas (121.5, 101.5): the limb
    assert px(small, 25, 25) == (255, 85, 0)  # the neck joint
    assert px(small, 30, 27) == (0, 0, 0)  # canvas y 109.5: outside the 4-px half-width


def test_colour_tables():
    np.testing.assert_array_equal(hue_to_rgb(0.0), [1, 0, 0])
    np.testing.assert_array_equal(hue_to_rgb(0.25), [0.5, 1, 0])
    np.testing.assert_array_equal(hue_to_rgb(0.5), [0, 1, 1])
    assert len(HAND_COLORS) == 20
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(_DIM_LUT, (values * 0.6).astype(np.uint8))
    assert _DIM_LUT[255] == 153 and _DIM_LUT[63] == 37


def test_empty_and_broken_keypoints_draw_black():
    assert draw_pose(PoseFrame.empty(64, 48), 48, 64).max() == 0
    f = _frame()
    f.body[0, 1] = (np.nan, np.inf)  # keypoints from elsewhere may hold NaN: skipped, never a crash
    out = draw_pose(f, S, S)
    assert px(out, 120, 100) == (0, 0, 0) and px(out, 140, 100) == (255, 170, 0)
