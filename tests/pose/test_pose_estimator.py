"""RTMPose affine crop and SimCC decode (stableanimator_core.pose.estimator)."""

from __future__ import annotations

import numpy as np
import pytest

from stableanimator_core.loading.onnx_backend import get_session
from stableanimator_core.pose import estimator
from stableanimator_core.testing.onnx_mocks import POSE_TEMPLATE, person_image, write_dwpose_models

OUT = (288, 384)


@pytest.fixture(scope="module")
def pose_session(tmp_path_factory):
    _, pose = write_dwpose_models(str(tmp_path_factory.mktemp("dwpose")))
    return get_session(pose, "cpu")


def test_center_scale_and_aspect():
    center, scale = estimator.box_center_scale(np.array([10.0, 20.0, 110.0, 220.0]))
    np.testing.assert_array_equal(center, [60, 120])
    np.testing.assert_array_equal(scale, [125, 250])
    np.testing.assert_array_equal(estimator.fix_aspect(scale, 0.75), [187.5, 250])
    np.testing.assert_array_equal(estimator.fix_aspect(np.array([300.0, 100.0]), 0.75), [300, 400])


@pytest.mark.parametrize("point", [(60.0, 120.0), (20.5, 31.25), (150.0, 300.0)])
def test_affine_crop_round_trip(point):
    center, scale = np.array([60.0, 120.0]), np.array([187.5, 250.0])
    m = estimator.crop_matrix(center, scale, OUT)
    q = m @ np.array([point[0], point[1], 1.0])
    # the box centre goes to the crop centre and the scale is crop width / box width
    np.testing.assert_allclose(m @ [60, 120, 1], [144, 192], atol=1e-4)
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 288 / 187.5, atol=1e-6)
    np.testing.assert_allclose(estimator.crop_to_image(q, center, scale, OUT), point, atol=1e-3)


def test_crop_moves_a_dot_where_the_matrix_says():
    image = np.zeros((400, 300, 3), np.uint8)
    image[211, 97] = 255
    box = np.array([40.0, 100.0, 200.0, 330.0])
    crop, center, scale = estimator.crop_person(image, box, OUT)
    assert crop.shape == (384, 288, 3)
    np.testing.assert_allclose(crop[0, 0], (0 - estimator.MEAN) / estimator.STD)  # black outside, normalised
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    expected = estimator.crop_matrix(center, scale, OUT) @ [97, 211, 1]
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1


def test_decode_simcc_hand_case():
    sx = np.zeros((3, 576), np.float32)
    sy = np.zeros((3, 768), np.float32)
    sx[0, 101], sy[0, 40] = 0.9, 0.7  # joint 0: (50.5, 20), score min(0.9, 0.7)
    sx[1, 10], sy[1, 767] = 0.2, 0.8  # joint 1: (5, 383.5), score 0.2
    sx[2] -= 1.0  # joint 2: nothing positive -> location -1 / 2
    sy[2] -= 1.0
    pts, scores = estimator.decode_simcc(sx, sy)
    np.testing.assert_array_equal(pts, [[50.5, 20.0], [5.0, 383.5], [-0.5, -0.5]])
    np.testing.assert_allclose(scores, [0.7, 0.2, -1.0])


def test_dot_lands_at_keypoint_zero(pose_session):
    nose = (233, 151)
    image = person_image(420, 520, (nose[0], nose[1] + 80), (170, 300), nose)
    box = np.array([140.0, 60.0, 330.0, 400.0])
    pts, scores = estimator.estimate_poses(pose_session, image, box[None])
    assert pts.shape == (1, 133, 2) and scores.shape == (1, 133) and pts.dtype == np.float64
    assert np.abs(pts[0, 0] - nose).max() <= 1.0
    # other joints sit at the template offsets, in crop pixels scaled back to the image
    _, scale = estimator.box_center_scale(box)
    px_per_crop = estimator.fix_aspect(scale, 0.75)[0] / 288
    np.testing.assert_allclose(pts[0, 9], np.add(nose, POSE_TEMPLATE[9] * px_per_crop), atol=1.5)
    assert scores[0, 0] > 0.9 and scores[0, 4] < 0.3


def test_no_box_uses_the_whole_image(pose_session):
    nose = (60, 70)
    image = person_image(200, 160, (60, 120), (80, 150), nose)
    pts, _ = estimator.estimate_poses(pose_session, image, np.zeros((0, 4)))
    assert pts.shape == (1, 133, 2)
    assert np.abs(pts[0, 0] - nose).max() <= 1.0
