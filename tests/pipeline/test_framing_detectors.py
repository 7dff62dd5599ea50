"""Framing with the real detection code (mock ONNX models): the crop lands on the detected person / face, and the
framed reference's pose and face box are where the framing map says the original ones were."""

from __future__ import annotations

import numpy as np
import pytest

from stableanimator_core.pipeline.framing import face_finder, frame_reference, person_finder, subject_box
from stableanimator_core.identity import load_antelopev2
from stableanimator_core.identity.reference import reference_identity
from stableanimator_core.pose import DWPose, extract_poses
from stableanimator_core.testing.onnx_mocks import person_image

NOSE = (560, 150)  # (x, y): a person off to the right of a landscape photo


@pytest.fixture(scope="module")
def photo():
    # a light ellipse (the person the YOLOX mock finds) with a white dot where the pose mock puts the nose
    return person_image(400, 720, center=(560, 250), size=(150, 300), nose=NOSE)


@pytest.fixture(scope="module")
def dwpose(tiny_models_dir):
    d = tiny_models_dir / "stableanimator" / "DWPose"
    return DWPose(str(d / "yolox_l.onnx"), str(d / "dw-ll_ucoco_384.onnx"), provider="cpu")


def nose_of(pose) -> np.ndarray:
    return pose.body[0, 0] * [pose.width, pose.height]


@pytest.mark.parametrize("mode, anchor", [("stretch", "center"), ("crop", "person"), ("pad", "center")])
def test_reference_pose_follows_the_framing(photo, dwpose, tiny_models_dir, mode, anchor):
    find = person_finder(str(tiny_models_dir / "stableanimator" / "DWPose" / "yolox_l.onnx"), "cpu")
    box = subject_box(photo, anchor, find) if anchor != "center" else None
    framed, framing = frame_reference(photo, 512, 512, mode, anchor, box)
    # the skeleton alignment's target is the reference pose DWPose finds on the framed image
    seq = extract_poses(framed, [framed], dwpose)
    assert (seq.width, seq.height) == (framed.shape[1], framed.shape[0])
    np.testing.assert_allclose(nose_of(seq.reference), framing.points(nose_of(dwpose(photo))), atol=2.0)
    if mode == "crop":  # the 400x400 window is centred on the person, who was at x 485..635
        assert framing.origin_xy[0] == 720 - 400 and framed.shape[:2] == (400, 400)


def test_crop_on_the_face_and_the_face_box_on_the_framed_reference(tiny_models_dir):
    # one bright two-tone square: the brightness peak the face-detector mock reports as a face
    photo = np.full((400, 720, 3), 20, np.uint8)
    photo[90:210, 500:620] = (250, 200, 150)
    photo[150:210, 500:560] = (150, 250, 240)
    model = load_antelopev2(str(tiny_models_dir / "insightface"), "cpu")
    box = subject_box(photo, "face", face_finder(model))
    framed, framing = frame_reference(photo, 576, 1024, "crop", "face", box)
    assert framed.shape[:2] == (400, 225)
    on_framed = reference_identity(framed, model).box  # x0, y0, x1, y1
    on_original = reference_identity(photo, model).box
    mapped = framing.points(np.reshape(on_original, (2, 2)))
    centre_framed = (on_framed[:2] + on_framed[2:]) / 2
    # the face the identity uses is the same face, where the map puts it (the mock's boxes sit on a 32-px grid)
    np.testing.assert_allclose(centre_framed, mapped.mean(axis=0), atol=20)
    assert abs(centre_framed[0] - framed.shape[1] / 2) < 40  # and the crop is centred on it
