"""Reference identity (raw ArcFace embedding of the largest face, BGR input) and driving-frame face boxes."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from skimage import data

from stableanimator_core.errors import InputError, NoFaceError
from stableanimator_core.identity import (
    align_face_512, driving_face_boxes, largest_face, load_antelopev2, reference_identity,
)
from stableanimator_core.pose.face_boxes import map_driving_box
from stableanimator_core.testing.onnx_mocks import write_antelopev2_pack


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface")
    write_antelopev2_pack(str(root))
    return load_antelopev2(str(root), provider="cpu")


def face_image(squares, size=(400, 600)):
    """Dark image with bright, coloured squares (x, y, side): the SCRFD mock finds one face per square."""
    img = np.full(size + (3,), 20, np.uint8)
    for x, y, side in squares:
        img[y : y + side, x : x + side] = (250, 200, 150)  # coloured, so a channel swap changes the embedding
        img[y + side // 2 : y + side, x : x + side // 2] = (150, 250, 240)
    return img


def test_raw_embedding_of_the_face_in_bgr(model):
    img = face_image([(250, 100, 120)])
    ident = reference_identity(img, model)
    assert ident.embedding.shape == (512,) and ident.embedding.dtype == np.float32
    assert ident.num_faces == 1 and ident.det_size == 640 and ident.landmarks.shape == (5, 2)
    x0, y0, x1, y1 = ident.box
    assert x0 < 310 < x1 and y0 < 160 < y1
    # the same as insightface on the BGR image (the training convention), raw rather than L2-normalised
    direct = largest_face(model.app.get(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)))
    np.testing.assert_array_equal(ident.embedding, direct.embedding)
    assert abs(np.linalg.norm(ident.embedding) - 1.0) > 0.5
    # ... and not what the official inference script computes (insightface fed RGB)
    swapped = largest_face(model.app.get(img))
    assert not np.allclose(ident.embedding, swapped.embedding)


def test_several_faces_are_logged(model, caplog):
    img = face_image([(40, 60, 130), (330, 150, 160)])
    with caplog.at_level(logging.INFO, logger="stableanimator_core.identity.reference"):
        ident = reference_identity(img, model, image_name="group.png")
    faces = model.app.get(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ident.num_faces == len(faces) == 2
    np.testing.assert_array_equal(ident.box, largest_face(faces).bbox)  # the mock's boxes tie: the later one
    assert "group.png: 2 faces found; using the largest" in caplog.text


def test_largest_face_by_area_ties_take_the_later_one():
    a = SimpleNamespace(bbox=np.array([0, 0, 10, 10]))
    big = SimpleNamespace(bbox=np.array([50, 50, 62, 61]))
    b = SimpleNamespace(bbox=np.array([5, 5, 15, 15]))
    assert largest_face([a, big, b]) is big
    assert largest_face([a, b]) is b  # as the official sorted(...)[-1]
    assert largest_face([]) is None


def test_no_face_is_an_error_naming_the_image_unless_allowed(model, caplog):
    with pytest.raises(NoFaceError, match="ref_photo.png"):
        reference_identity(np.zeros((200, 200, 3), np.uint8), model, image_name="ref_photo.png")
    with caplog.at_level(logging.WARNING):
        assert reference_identity(np.zeros((200, 200, 3), np.uint8), model, no_face="zero_tokens") is None
    assert "without an identity" in caplog.text


class LadderModel:
    """Finds a face only at detection sizes <= 384; records the sizes asked for."""

    def __init__(self):
        self.asked, self.current = [], 640

    def faces(self, image, det_size):
        self.asked.append(det_size)
        self.current = det_size
        if det_size > 384:
            return []
        return [SimpleNamespace(bbox=np.array([1.0, 2.0, 30.0, 40.0]), kps=np.zeros((5, 2)), det_score=0.9,
                                embedding=np.arange(512, dtype=np.float32))]

    def set_det_size(self, size):
        self.current = size


def test_detection_ladder_retries_smaller_sizes_then_restores():
    fake = LadderModel()
    ident = reference_identity(np.zeros((50, 50, 3), np.uint8), fake)
    assert fake.asked == [640, 576, 512, 448, 384] and ident.det_size == 384 and fake.current == 640
    np.testing.assert_array_equal(ident.embedding, np.arange(512))
    fake = LadderModel()
    with pytest.raises(NoFaceError):
        reference_identity(np.zeros((50, 50, 3), np.uint8), fake, det_sizes=(640, 512))
    assert fake.asked == [640, 512] and fake.current == 640


def test_resize_first_and_input_checks(model):
    ident = reference_identity(face_image([(250, 100, 120)]), model, size=(300, 200))  # half size
    assert ident.box[2] <= 300 and ident.box[3] <= 200
    with pytest.raises(InputError, match="uint8"):
        reference_identity(np.zeros((10, 10, 3), np.float32), model)


def test_astronaut_photo(model):
    ident = reference_identity(data.astronaut(), model, image_name="astronaut")
    assert np.all(np.isfinite(ident.embedding)) and ident.num_faces >= 1
    assert np.all((ident.box >= -64) & (ident.box <= 512 + 64))


def test_driving_face_boxes_and_their_mapping(model):
    frames = [face_image([(250, 100, 120)]), np.full((400, 600, 3), 20, np.uint8)]
    boxes = driving_face_boxes(frames, model)
    assert boxes[1] is None and boxes[0].shape == (4,)
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 310 < x1 and y0 < 160 < y1
    # onto a 300 x 200 generation canvas with the identity face map: the box scales with the canvas
    mapped = map_driving_box(boxes[0], (600, 400), (np.ones(2), np.zeros(2)), 200, 300)
    assert mapped == (int(np.floor(y0 / 2)), int(np.ceil(y1 / 2)) - 1, int(np.floor(x0 / 2)), int(np.ceil(x1 / 2)) - 1)


# ---- the official scripts' choices ------------------------------------------------------------------------
def test_official_inference_channels_feed_insightface_rgb(model):
    """inference_basic.py:342-344: cv2.imread (BGR) then COLOR_RGB2BGR, so insightface gets the RGB array."""
    img = face_image([(250, 100, 120)])
    ident = reference_identity(img, model, channels="official_inference")
    np.testing.assert_array_equal(ident.embedding, largest_face(model.app.get(img.copy())).embedding)
    assert not np.allclose(ident.embedding, reference_identity(img, model).embedding)
    with pytest.raises(InputError, match="channels"):
        reference_identity(img, model, channels="rgb")


def test_official_no_face_is_a_zero_embedding_without_a_landmark_model(model, caplog):
    with caplog.at_level(logging.WARNING):
        ident = reference_identity(np.zeros((200, 200, 3), np.uint8), model, no_face="official")
    assert ident.source == "zero_embedding" and ident.box is None
    assert ident.embedding.shape == (512,) and ident.embedding.dtype == np.float32 and not ident.embedding.any()
    assert "zero ArcFace embedding" in caplog.text


def test_official_no_face_detects_at_640_only_then_retries_on_the_aligned_face(model):
    fake = LadderModel()  # finds a face at <= 384 px only: the official 640 px detection misses it
    fake.embed_aligned = model.embed_aligned
    img = face_image([(250, 100, 120)])
    points = np.array([[270, 140], [330, 140], [300, 170], [275, 200], [325, 200]], np.float32)
    seen = []
    ident = reference_identity(img, fake, no_face="official", channels="official_inference",
                               landmark_model=lambda im: seen.append(im) or points)
    assert fake.asked == [640] and ident.source == "aligned_retry"
    assert seen[0] is img  # the landmark model sees what insightface saw (here the official RGB array)
    np.testing.assert_array_equal(ident.embedding, model.embed_aligned(align_face_512(img, points)))


def test_aligned_crop_puts_the_landmarks_on_facexlibs_template():
    from stableanimator_core.identity.reference import ALIGN_BORDER, ALIGN_TEMPLATE_512

    img = np.zeros((120, 120, 3), np.uint8)
    points = ALIGN_TEMPLATE_512 * 0.25 + [10, 10]  # a scaled, shifted copy of the template: a similarity maps it back
    for x, y in points:
        cv2.circle(img, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
    crop = align_face_512(img, points)
    assert crop.shape == (512, 512, 3)
    for x, y in ALIGN_TEMPLATE_512:
        assert crop[int(round(y)), int(round(x))].max() > 50
    assert tuple(crop[511, 511]) == ALIGN_BORDER  # outside the source: facexlib's grey border


def test_center_face_landmarks_is_facexlibs_only_center_face():
    from stableanimator_core.identity.landmarks import center_face_landmarks

    rows = np.zeros((2, 15))
    rows[0, :4] = [0, 0, 40, 40]
    rows[1, :4] = [80, 80, 120, 120]  # centre (100, 100) = the image centre
    rows[1, 5:15] = np.arange(10)
    np.testing.assert_array_equal(center_face_landmarks(rows, 200, 200), np.arange(10).reshape(5, 2))
    assert center_face_landmarks(np.zeros((0, 15)), 200, 200) is None
