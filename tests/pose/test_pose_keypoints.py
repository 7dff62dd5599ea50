"""PoseFrame <-> ComfyUI POSE_KEYPOINT (OpenPose JSON as comfyui_controlnet_aux writes it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stableanimator_core.errors import InputError
from stableanimator_core.pose import draw_pose
from stableanimator_core.pose.keypoints import PoseFrame, from_openpose_json, to_openpose_json


def _frame(seed: int = 0, people: int = 2) -> PoseFrame:
    rng = np.random.default_rng(seed)
    return PoseFrame(
        rng.uniform(0.1, 0.9, (people, 18, 2)), rng.uniform(0, 1, (people, 18)),
        rng.uniform(0.1, 0.9, (people, 68, 2)), rng.uniform(0, 1, (people, 68)),
        rng.uniform(0.1, 0.9, (people, 2, 21, 2)), rng.uniform(0, 1, (people, 2, 21)), 640, 480,
    )


def test_controlnet_aux_shape():
    f = _frame()
    f.hand_scores[1, 1] = 0.1  # a hand with no visible point -> None, as controlnet_aux writes it
    out = to_openpose_json([f])
    assert isinstance(out, list) and len(out) == 1
    d = out[0]
    assert d["canvas_width"] == 640 and d["canvas_height"] == 480 and len(d["people"]) == 2
    p = d["people"][0]
    assert len(p["pose_keypoints_2d"]) == 18 * 3 and len(p["face_keypoints_2d"]) == 70 * 3
    assert len(p["hand_left_keypoints_2d"]) == 21 * 3
    assert d["people"][1]["hand_right_keypoints_2d"] is None
    body = np.array(p["pose_keypoints_2d"]).reshape(18, 3)
    visible = f.body_scores[0] >= 0.3
    np.testing.assert_allclose(body[visible, :2], f.body[0, visible] * [640, 480])  # pixels
    assert set(body[:, 2]) <= {0.0, 1.0} and np.all(body[~visible] == 0) and np.all(body[visible, 2] == 1)
    face = np.array(p["face_keypoints_2d"]).reshape(70, 3)
    eyes_visible = f.body_scores[0, 14:16] >= 0.3
    np.testing.assert_allclose(face[68:][eyes_visible, :2], f.body[0, 14:16][eyes_visible] * [640, 480])
    json.dumps(out)  # plain JSON types only


def test_round_trip_is_exact_and_draws_the_same():
    f = _frame(1)
    back = from_openpose_json(json.loads(json.dumps(to_openpose_json([f]))))[0]
    for name in ("body", "body_scores", "face", "face_scores", "hands", "hand_scores"):
        np.testing.assert_array_equal(getattr(back, name), getattr(f, name))
    assert (back.width, back.height) == (640, 480)
    np.testing.assert_array_equal(draw_pose(back, 240, 320), draw_pose(f, 240, 320))


def test_reads_controlnet_aux_pixels_and_draws_them():
    body = [0.0] * 54
    body[3:6] = [100.0, 50.0, 1.0]  # neck
    body[6:9] = [140.0, 50.0, 1.0]  # right shoulder
    d = {"people": [{"pose_keypoints_2d": body, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
                     "hand_right_keypoints_2d": None}], "canvas_width": 200, "canvas_height": 100}
    f = from_openpose_json(d)[0]
    np.testing.assert_allclose(f.body[0, 1], [0.5, 0.5])
    np.testing.assert_allclose(f.body[0, 2], [0.7, 0.5])
    assert f.body_scores[0, 1] == 1.0 and f.body_scores[0, 0] == 0.0 and f.face_scores.max() == 0
    img = draw_pose(f, 1080, 2160)  # normalised: limb 0 (red) from (1080, 540) to (1512, 540)
    assert tuple(img[540, 1300]) == (153, 0, 0)


def test_reads_normalised_coordinates_and_trims_face_to_68():
    face = [v for i in range(70) for v in (0.4 + i / 1000, 0.3, 1.0)]
    d = {"people": [{"pose_keypoints_2d": [0.5, 0.25, 1.0] + [0.0] * 51, "face_keypoints_2d": face}],
         "canvas_width": 300, "canvas_height": 200}
    f = from_openpose_json([d])[0]
    np.testing.assert_allclose(f.body[0, 0], [0.5, 0.25])  # already normalised: not divided again
    assert f.face.shape == (1, 68, 2)
    np.testing.assert_allclose(f.face[0, 67], [0.467, 0.3])
    assert f.hand_scores.max() == 0


def test_empty_and_invalid():
    f = from_openpose_json({"people": [], "canvas_width": 64, "canvas_height": 32})[0]
    assert f.num_people == 0 and (f.width, f.height) == (64, 32)
    assert to_openpose_json([PoseFrame.empty(64, 32)]) == [{"people": [], "canvas_width": 64, "canvas_height": 32}]
    with pytest.raises(InputError, match="canvas_width"):
        from_openpose_json({"people": []})
