"""YOLOX pre/post-processing (stableanimator_core.pose.detector)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stableanimator_core.loading.onnx_backend import get_session
from stableanimator_core.pose import detector
from stableanimator_core.testing.onnx_mocks import person_image, write_dwpose_models


@pytest.fixture(scope="module")
def yolox(tmp_path_factory):
    det, _ = write_dwpose_models(str(tmp_path_factory.mktemp("dwpose")))
    return get_session(det, "cpu")


def test_letterbox_top_left_with_114_padding():
    image = np.zeros((300, 500, 3), np.uint8)
    image[100:200, 250:400] = (10, 200, 30)
    canvas, r = detector.letterbox(image)
    assert canvas.shape == (640, 640, 3) and r == pytest.approx(1.28)
    # a point p of the image lands at p * r; the padding is below the resized image only
    assert tuple(canvas[int(150 * r), int(320 * r)]) == (10, 200, 30)
    assert tuple(canvas[int(50 * r), int(50 * r)]) == (0, 0, 0)
    assert np.all(canvas[384:] == 114) and canvas[:384].max() == 200 and canvas[:384].min() == 0


def test_decode_boxes_hand_case():
    raw = np.zeros((8400, 85), np.float32)
    anchor = 6400 + 2 * 40 + 3  # stride 16, cell (x=3, y=2)
    raw[anchor, :6] = [0.5, 0.25, math.log(2.0), math.log(4.0), 0.9, 0.5]
    boxes, scores = detector.decode_boxes(raw, r=2.0)
    # centre (3.5*16, 2.25*16) = (56, 36), size (32, 64), then / r
    np.testing.assert_allclose(boxes[anchor], np.array([40, 4, 72, 68]) / 2.0, rtol=1e-6)
    assert scores.shape == (8400, 80) and scores[anchor, 0] == pytest.approx(0.45)
    with pytest.raises(ValueError):
        detector.decode_boxes(np.zeros((100, 85), np.float32), 1.0)


def test_nms_uses_plus_one_areas_and_score_order():
    boxes = np.array([[1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert detector.nms(boxes, scores, 0.45) == [1, 2]  # IoU(0, 1) = 100 / 142 = 0.70
    assert detector.nms(boxes, scores, 0.75) == [1, 0, 2]


def test_select_people_thresholds():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]], np.float32)
    class_scores = np.zeros((3, 80), np.float32)
    class_scores[:, 0] = [0.9, 0.25, 0.05]
    class_scores[2, 3] = 0.99  # another class never yields a person
    people = detector.select_people(boxes, class_scores)
    np.testing.assert_array_equal(people.boxes, boxes[:1])
    assert people.boxes.dtype == np.float64 and people.scores[0] == pytest.approx(0.9)
    empty = detector.select_people(boxes, np.zeros((3, 80), np.float32))
    assert empty.boxes.shape == (0, 4)


def test_detect_people_on_a_non_square_frame(yolox):
    image = person_image(480, 800, center=(300, 260), size=(180, 330), nose=(300, 140))
    found = detector.detect_people(yolox, image)
    assert found.boxes.shape == (1, 4)
    x0, y0, x1, y1 = found.boxes[0]
    assert x0 < 300 < x1 and y0 < 260 < y1
    # the mock's box is 7 strides of the letterbox, i.e. 224 / r image pixels
    assert x1 - x0 == pytest.approx(224 / 0.8, abs=1e-3)


def test_detect_people_counts(yolox):
    two = person_image(480, 800, (200, 260), (180, 330), (200, 140))
    two = person_image(480, 800, (600, 260), (180, 330), (600, 140), image=two)
    assert len(detector.detect_people(yolox, two).boxes) == 2
    assert len(detector.detect_people(yolox, np.full((480, 800, 3), 25, np.uint8)).boxes) == 0
