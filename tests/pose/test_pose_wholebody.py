"""DWPose whole-body assembly: neck, MMPose -> OpenPose order, normalisation; the full path on a real photo."""

from __future__ import annotations


import numpy as np
import pytest
from skimage import data

from stableanimator_core.pose import DWPose
from stableanimator_core.pose.detector import Detections
from stableanimator_core.pose.estimator import box_center_scale, fix_aspect
from stableanimator_core.pose.wholebody import frame_from_wholebody, to_openpose_order
from stableanimator_core.testing.onnx_mocks import person_image, write_dwpose_models


@pytest.fixture(scope="module")
def dwpose(tmp_path_factory):
    det, pose = write_dwpose_models(str(tmp_path_factory.mktemp("dwpose")))
    return DWPose(det, pose, provider="cpu")


def test_neck_and_openpose_order():
    idx = np.arange(133, dtype=np.float64)
    points = np.stack([np.stack([idx, 1000 + idx], -1)] * 2)  # x = MMPose index
    scores = np.full((2, 133), 0.9, np.float32)
    scores[1, 6] = 0.2  # second person: right shoulder hidden -> neck score 0
    pts, sc = to_openpose_order(points, scores)
    assert pts.shape == (2, 134, 2) and sc.shape == (2, 134)
    # OpenPose body order: nose, neck, R arm, L arm, R leg, L leg, R eye, L eye, R ear, L ear
    np.testing.assert_array_equal(pts[0, :18, 0], [0, 5.5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
    np.testing.assert_array_equal(pts[0, 1], [5.5, 1005.5])
    assert sc[0, 1] == 1.0 and sc[1, 1] == 0.0
    # feet, face and hands shift by one behind the inserted neck
    np.testing.assert_array_equal(pts[0, [18, 24, 91, 92, 113, 133], 0], [17, 23, 90, 91, 112, 132])


def test_frame_normalises_and_splits_hands():
    pts = np.zeros((1, 134, 2))
    pts[0, :, 0], pts[0, :, 1] = 200.0, 50.0
    pts[0, 113:, 0] = 300.0
    frame = frame_from_wholebody(pts, np.ones((1, 134)), 400, 100, Detections(np.zeros((1, 4)), np.ones(1)))
    assert frame.body.shape == (1, 18, 2) and frame.face.shape == (1, 68, 2) and frame.hands.shape == (1, 2, 21, 2)
    np.testing.assert_array_equal(frame.body[0, 0], [0.5, 0.5])
    np.testing.assert_array_equal(frame.hands[0, :, 0, 0], [0.5, 0.75])  # left hand, then right hand
    assert frame.detected and (frame.width, frame.height) == (400, 100)


def test_bright_dot_becomes_the_nose(dwpose):
    nose = (300, 150)
    frame = dwpose(person_image(480, 640, (300, 260), (190, 330), nose))
    assert frame.detected and frame.num_people == 1 and frame.boxes.shape == (1, 4)
    np.testing.assert_allclose(frame.body[0, 0] * [640, 480], nose, atol=1.0)
    np.testing.assert_allclose(frame.body[0, 1], frame.body[0, [2, 5]].mean(axis=0))
    assert frame.body_scores[0, 0] > 0.9 and frame.body_scores[0, 16] < 0.3  # the mock's damped right ear


def test_nobody_found_runs_on_the_whole_image(dwpose):
    frame = dwpose(np.full((240, 320, 3), 25, np.uint8))
    assert not frame.detected and frame.num_people == 1 and len(frame.boxes) == 0


def test_rejects_non_uint8_rgb(dwpose):
    with pytest.raises(ValueError, match="uint8"):
        dwpose(np.zeros((10, 10, 3), np.float32))


def test_astronaut_photo_through_the_full_path(dwpose):
    image = data.astronaut()  # public-domain NASA photo, 512x512 RGB
    frame = dwpose(image)
    assert frame.detected and frame.num_people >= 1
    for part in (frame.body, frame.body_scores, frame.face, frame.hands):
        assert np.all(np.isfinite(part))
    gray = image.astype(np.float64).mean(axis=2)
    size = np.array([512.0, 512.0])
    for n, box in enumerate(frame.boxes):
        center, scale = box_center_scale(box)
        scale = fix_aspect(scale, 288 / 384)
        lo, hi = center - scale / 2, center + scale / 2
        # every keypoint decodes inside its person's crop window
        for pts in (frame.body[n], frame.face[n], frame.hands[n].reshape(-1, 2)):
            px = pts * size
            assert np.all((px >= lo - 1) & (px <= hi + 1))
        # the mock's nose is the crop's brightest pixel: find it in the photo independently
        x0, y0 = np.maximum(np.ceil(lo), 0).astype(int)
        x1, y1 = np.minimum(np.floor(hi), 511).astype(int)
        window = gray[y0 : y1 + 1, x0 : x1 + 1]
        ys, xs = np.nonzero(window == window.max())
        nose = frame.body[n, 0] * size
        assert np.min(np.hypot(xs + x0 - nose[0], ys + y0 - nose[1])) <= 1.5
    # the best detection's visible joints lie inside the photo
    visible = frame.body_scores[0] > 0.3
    assert visible.sum() >= 10
    assert np.all((frame.body[0, visible] >= 0) & (frame.body[0, visible] <= 1))
