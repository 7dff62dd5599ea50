"""End to end: missing-person policies, person choice, and pixel parity with the official skeleton_extraction.py."""

from __future__ import annotations

import hashlib
import logging

import cv2
import numpy as np
import pytest

from stableanimator_core.errors import NoPersonError
from stableanimator_core.pose import DWPose, extract_poses, render_skeletons, sequence_from_poses
from stableanimator_core.pose.extraction import OFFICIAL_POSE_OPTIONS
from stableanimator_core.pose.keypoints import PoseFrame
from stableanimator_core.testing.onnx_mocks import write_dwpose_models
from stableanimator_core.testing.official_pose import CASES, OFFICIAL_SHA256, make_mixed_inputs, make_parity_inputs
from stableanimator_core.testing.pose_frames import PERSON, make_frame


class FakeModel:
    """Returns a prepared PoseFrame per image; the image's first pixel holds its index (255 = reference)."""

    def __init__(self, reference: PoseFrame, frames: list[PoseFrame]):
        self.reference, self.frames, self.calls = reference, frames, 0

    def __call__(self, image):
        self.calls += 1
        i = int(image[0, 0, 0])
        return self.reference if i == 255 else self.frames[i]


def _image(i):
    img = np.zeros((4, 4, 3), np.uint8)
    img[0, 0, 0] = i
    return img


def _nobody(w=200, h=300):
    f = make_frame(PERSON, w, h)
    f.detected, f.boxes = False, np.zeros((0, 4))
    return f


def _run(frames, **kw):
    ref = make_frame(PERSON * 1.2, 240, 360)
    model = FakeModel(ref, frames)
    return extract_poses(_image(255), (_image(i) for i in range(len(frames))), model, **kw), model


def test_empty_policy():
    frames = [make_frame(PERSON + [5 * i, 0], 200, 300) for i in range(4)]
    frames[2] = _nobody()
    seq, _ = _run(frames)
    assert [f.num_people for f in seq.aligned] == [1, 1, 0, 1]
    assert seq.source == [0, 1, None, 3] and seq.face_maps[2] is None
    assert (seq.width, seq.height) == (240, 360)
    images = list(render_skeletons(seq))
    assert images[2].shape == (360, 240, 3) and images[2].max() == 0 and images[1].max() > 0
    for f in seq.aligned:
        assert np.all(np.isfinite(f.body)) and np.all(np.isfinite(f.hands))


def test_repeat_policy_fills_from_the_nearest_earlier_pose(caplog):
    frames = [_nobody()] + [make_frame(PERSON + [5 * i, 0], 200, 300) for i in range(1, 5)]
    frames[3] = _nobody()
    with caplog.at_level(logging.WARNING):
        seq, _ = _run(frames, missing="repeat")
    assert seq.source == [1, 1, 2, 2, 4]
    np.testing.assert_array_equal(seq.aligned[3].body, seq.aligned[2].body)
    np.testing.assert_array_equal(seq.aligned[0].body, seq.aligned[1].body)
    assert "2 driving frame(s) without a usable person (0, 3)" in caplog.text


def test_error_policy_names_the_frame_and_stops_early():
    frames = [make_frame(PERSON, 200, 300) for _ in range(6)]
    frames[3] = _nobody()
    with pytest.raises(NoPersonError, match="driving frame 3"):
        _run(frames, missing="error")
    model = FakeModel(make_frame(PERSON, 240, 360), frames)
    with pytest.raises(NoPersonError):
        extract_poses(_image(255), (_image(i) for i in range(6)), model, missing="error")
    assert model.calls == 1 + 4  # reference + frames 0..3: the rest of the video is not processed


def test_no_person_anywhere_and_no_reference_person():
    with pytest.raises(NoPersonError, match="any of the 2 driving frames"):
        _run([_nobody(), _nobody()])
    nobody_ref = make_frame(PERSON, 240, 360, scores=np.zeros(18))
    model = FakeModel(nobody_ref, [make_frame(PERSON, 200, 300)])
    with pytest.raises(NoPersonError, match="reference image"):
        extract_poses(_image(255), [_image(0)], model)
    assert model.calls == 1  # failed before the driving pass
    seq = extract_poses(_image(255), [_image(0)], FakeModel(nobody_ref, [make_frame(PERSON, 200, 300)]), align="none")
    assert seq.aligned[0].num_people == 1


def test_reference_without_a_box_uses_the_whole_image_pose(caplog):
    ref = _nobody(240, 360)  # detector missed; the pose model ran on the whole image (the official fallback)
    with caplog.at_level(logging.WARNING):
        seq = extract_poses(_image(255), [_image(0)], FakeModel(ref, [make_frame(PERSON, 200, 300)]))
    assert "no person box found in the reference image" in caplog.text
    np.testing.assert_array_equal(seq.reference.body, ref.body)
    assert seq.aligned[0].num_people == 1


def _two_people():
    f = make_frame(PERSON, 400, 300, people=2)
    f.body[1] += [0.5, 0.0]
    f.body_scores[1] = 0.95  # the second person is more confident, the first has the larger box
    f.boxes = np.array([[0.0, 0.0, 200.0, 300.0], [250.0, 50.0, 350.0, 250.0]])
    return f


@pytest.mark.parametrize(
    "person, expected_x", [("largest", PERSON[1, 0] / 400), ("confident", PERSON[1, 0] / 400 + 0.5)]
)
def test_person_choice(person, expected_x, caplog):
    with caplog.at_level(logging.INFO):
        seq, _ = _run([_two_people(), make_frame(PERSON, 400, 300)], person=person, align="none")
    assert seq.aligned[0].num_people == 1
    assert seq.aligned[0].body[0, 1, 0] == pytest.approx(expected_x)
    assert "1 driving frame(s) show several people (0)" in caplog.text


@pytest.mark.parametrize("person", ["largest", "confident", "all"])
@pytest.mark.parametrize("missing", ["empty", "repeat", "whole_image"])
def test_drawing_choices_never_change_the_fit(person, missing):
    """One-, two- and no-person frames: the fit is the official one (one-person frames, including the
    whole-image pose of a frame where the detector found nobody), whatever is drawn."""
    from stableanimator_core.pose.alignment import fit_global

    ref = make_frame(PERSON * 1.2, 240, 360)
    frames = [make_frame(PERSON + [5 * i, 3 * i], 400, 300) for i in range(3)]
    frames += [_two_people(), _nobody(400, 300), make_frame(PERSON * 0.9, 400, 300)]
    frames[4].body = frames[4].body + 0.05  # the whole-image pose sits elsewhere and still counts
    a, b = fit_global(ref, [f for f in frames if f.num_people == 1])
    seq = sequence_from_poses(ref, frames, person=person, missing=missing)
    for i in (0, 1, 2, 5):
        np.testing.assert_array_equal(seq.aligned[i].body, frames[i].body * a + b)
    assert seq.aligned[3].num_people == (2 if person == "all" else 1)
    np.testing.assert_array_equal(seq.aligned[3].body, frames[3].select(
        [0, 1] if person == "all" else [0 if person == "largest" else 1]).body * a + b)
    if missing == "empty":
        assert seq.aligned[4].num_people == 0
    elif missing == "repeat":
        assert seq.source[4] == 3 and seq.aligned[4] is seq.aligned[3]
    else:
        np.testing.assert_array_equal(seq.aligned[4].body, frames[4].body * a + b)


def test_all_people_is_the_official_behaviour():
    seq, _ = _run([_two_people(), make_frame(PERSON, 400, 300)], person="all")
    assert [f.num_people for f in seq.aligned] == [2, 1]


def test_min_keypoints_rejects_weak_detections():
    weak = np.zeros(18)
    weak[[0, 1]] = 0.9
    frames = [make_frame(PERSON, 200, 300), make_frame(PERSON, 200, 300, scores=weak)]
    seq, _ = _run(frames, min_keypoints=3)
    assert [f.num_people for f in seq.aligned] == [1, 0]
    seq, _ = _run(frames, min_keypoints=1)
    assert [f.num_people for f in seq.aligned] == [1, 1]


def test_keypoints_from_another_pack_go_through_the_same_path():
    from stableanimator_core.pose import from_openpose_json, to_openpose_json

    ref = make_frame(PERSON * 1.2, 240, 360)
    drv = [make_frame(PERSON + [3 * i, 0], 200, 300) for i in range(3)]
    direct = sequence_from_poses(ref, drv)
    ref_json, drv_json = to_openpose_json([ref]), to_openpose_json(drv)
    via_json = sequence_from_poses(from_openpose_json(ref_json)[0], from_openpose_json(drv_json))
    for a, b in zip(direct.aligned, via_json.aligned):
        np.testing.assert_array_equal(a.body, b.body)


def test_bad_options():
    with pytest.raises(ValueError, match="missing"):
        _run([make_frame(PERSON, 200, 300)], missing="skip")
    with pytest.raises(ValueError, match="person"):
        _run([make_frame(PERSON, 200, 300)], person="first")


# ---- parity with the official tool (inputs and recorded outputs: stableanimator_core.testing.official_pose) ----
def _read(path):
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def _hashes(root, case, **options) -> list[str]:
    make_parity_inputs(str(root))
    make_mixed_inputs(str(root))
    model = DWPose(*write_dwpose_models(str(root / "DWPose")), provider="cpu")
    reference, n = CASES[case]
    frames = (_read(str(root / case / f"frame_{i}.png")) for i in range(n))
    seq = extract_poses(_read(str(root / f"{reference}.png")), frames, model, **options)
    return [hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()[:16] for img in render_skeletons(seq)]


@pytest.mark.parametrize("case", ["single", "multi", "mixed"])
def test_official_options_equal_the_official_tool_on_every_frame(tmp_path, case):
    assert _hashes(tmp_path, case, **OFFICIAL_POSE_OPTIONS) == OFFICIAL_SHA256[f"{case}_{CASES[case][0]}"]


@pytest.mark.parametrize("case, differs", [("single", []), ("multi", [1, 3, 5]), ("mixed", [2, 6])])
def test_defaults_equal_the_official_tool_wherever_it_draws_the_same(tmp_path, case, differs):
    """Regression: a two-person frame drawn as one person used to enter the fit and move every frame."""
    got = _hashes(tmp_path, case)
    official = OFFICIAL_SHA256[f"{case}_{CASES[case][0]}"]
    assert [i for i, (g, o) in enumerate(zip(got, official)) if g != o] == differs


def test_repeated_poses_do_not_enter_the_fit(tmp_path):
    got = _hashes(tmp_path, "mixed", missing="repeat")
    official = OFFICIAL_SHA256["mixed_ref3"]
    assert [i for i, (g, o) in enumerate(zip(got, official)) if g != o] == [2, 4, 6, 7]
    assert got[4] == got[3] and got[7] == got[6]  # the filled frames repeat the previous (aligned) pose
