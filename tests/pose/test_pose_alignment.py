"""Alignment of driving skeletons to the reference: the official global rescale and per-limb retargeting."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from stableanimator_core.errors import NoPersonError
from stableanimator_core.pose.alignment import BONES, FIT_JOINTS, align_poses, fit_global
from stableanimator_core.pose.keypoints import PoseFrame
from stableanimator_core.testing.pose_frames import PERSON, make_frame

def test_global_recovers_a_known_map():
    ref = make_frame(PERSON, 200, 300)
    a, b = 0.8, np.array([0.05, 0.1])
    drv = make_frame(PERSON, 200, 300)
    drv.body, drv.face, drv.hands = (ref.body - b) / a, (ref.face - b) / a, (ref.hands - b) / a
    scale, offset = fit_global(ref, [drv, drv])
    np.testing.assert_allclose(scale, [0.8, 0.8])
    np.testing.assert_allclose(offset, b, atol=1e-12)
    out = align_poses(ref, [drv], "global").frames[0]
    for name in ("body", "face", "hands"):
        np.testing.assert_allclose(getattr(out, name), getattr(ref, name), atol=1e-12)
    assert (out.width, out.height) == (200, 300)


def _official_rescale(ref: PoseFrame, frames: list[PoseFrame]):
    """StableAnimator skeleton_extraction.py's fit, restated step by step from its source."""
    ids = [i for i in [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] if ref.body_scores[0, i] > 0.3]
    ref_body = ref.body[0][ids]
    det = np.stack([f.body.reshape(-1, 2) for f in frames if f.num_people == 1])[:, ids]
    ay, by = np.polyfit(det[:, :, 1].flatten(), np.tile(ref_body[:, 1], len(det)), 1)
    fh, fw = ref.height, ref.width
    ax = ay / (fh / fw / ref.height * ref.width)
    bx = np.mean(np.tile(ref_body[:, 0], len(det)) - det[:, :, 0].flatten() * ax)
    return np.array([ax, ay]), np.array([bx, by])


def test_global_is_the_official_fit_bit_for_bit():
    rng = np.random.default_rng(3)
    ref_scores = np.full(18, 0.9)
    ref_scores[[3, 16]] = 0.2  # joints the reference does not show leave the fit
    ref = make_frame(PERSON * 1.7 + 30, 512, 768, scores=ref_scores)
    frames = [make_frame(PERSON + rng.normal(0, 6, PERSON.shape) + [40 * i, 5 * i], 640, 480, seed=i) for i in range(6)]
    frames.append(make_frame(PERSON, 640, 480, people=2))  # two people: drawn, but not in the fit
    a, b = _official_rescale(ref, frames)
    scale, offset = fit_global(ref, frames)
    np.testing.assert_array_equal(scale, a)
    np.testing.assert_array_equal(offset, b)
    result = align_poses(ref, frames, "global")
    for f, out in zip(frames, result.frames):
        np.testing.assert_array_equal(out.body, f.body * a + b)
        np.testing.assert_array_equal(out.hands, f.hands * a + b)
    assert result.frames[-1].num_people == 2


def test_degenerate_inputs_never_give_nan(caplog):
    ref = make_frame(PERSON, 200, 300)
    flat = make_frame(np.column_stack([PERSON[:, 0], np.full(18, 120.0)]), 200, 300)
    with caplog.at_level(logging.WARNING):
        scale, offset = fit_global(ref, [flat])
    assert np.all(np.isfinite(scale)) and np.all(np.isfinite(offset)) and list(scale) == [1.0, 1.0]
    assert "translation only" in caplog.text
    # the translation moves the mean of the fit joints onto the reference's
    moved = flat.body[0, FIT_JOINTS] + offset
    np.testing.assert_allclose(moved.mean(axis=0), ref.body[0, FIT_JOINTS].mean(axis=0))
    # a reference with all joints on one row would give slope ~0 and collapse every skeleton to a point
    row = make_frame(np.column_stack([PERSON[:, 0], np.full(18, 150.0)]), 200, 300)
    scale, _ = fit_global(row, [make_frame(PERSON, 200, 300)])
    assert list(scale) == [1.0, 1.0]
    scale, offset = fit_global(ref, [None, make_frame(PERSON, 200, 300, people=2)])
    assert list(scale) == [1.0, 1.0] and list(offset) == [0.0, 0.0]


def test_reference_without_body_is_a_clear_error():
    ref = make_frame(PERSON, 200, 300, scores=np.zeros(18))
    with pytest.raises(NoPersonError, match="reference image"):
        align_poses(ref, [make_frame(PERSON, 200, 300)], "global")
    out = align_poses(ref, [make_frame(PERSON, 200, 300)], "none").frames[0]  # no alignment needs no reference pose
    np.testing.assert_array_equal(out.body, make_frame(PERSON, 200, 300).body)


def _bone_lengths(frame: PoseFrame) -> dict:
    px = frame.body[0] * [frame.width, frame.height]
    return {bone: np.linalg.norm(px[bone[1]] - px[bone[0]]) for bone in BONES}


def test_limbs_take_reference_lengths_and_driving_angles():
    ref_px = PERSON.copy()
    ref_px[[3, 4], 1] += [15, 40]  # longer right arm
    ref_px[[9, 10, 12, 13]] += [[0, 20], [0, 45], [0, 20], [0, 45]]  # longer legs
    ref = make_frame(ref_px, 300, 400)
    rng = np.random.default_rng(5)
    base = PERSON * 0.6 + [200, 40]  # smaller person in a landscape video
    frames = [make_frame(base + rng.normal(0, 2, base.shape), 640, 360, seed=i) for i in range(5)]
    result = align_poses(ref, frames, "limbs")
    glob = align_poses(ref, frames, "global")
    ref_len = _bone_lengths(ref)
    for f, out, g in zip(frames, result.frames, glob.frames):
        out_px = out.body[0] * [300, 400]
        drv_px = f.body[0] * [640, 360]
        np.testing.assert_allclose(out_px[1], g.body[0, 1] * [300, 400])  # the neck stays where the fit put it
        for p, c in BONES:
            v_out, v_drv = out_px[c] - out_px[p], drv_px[c] - drv_px[p]
            cos = v_out @ v_drv / np.linalg.norm(v_out) / np.linalg.norm(v_drv)
            assert cos == pytest.approx(1.0, abs=1e-9)  # driving angle kept
    # bone length = reference length x (this frame's length / median driving length)
    drv_len = [_bone_lengths(f) for f in frames]
    for bone in BONES:
        median = np.median([d[bone] for d in drv_len])
        for d, out in zip(drv_len, result.frames):
            assert _bone_lengths(out)[bone] == pytest.approx(ref_len[bone] * d[bone] / median, rel=1e-9)


def test_limbs_hands_and_face_follow_their_anchor():
    ref = make_frame(PERSON * 1.5, 300, 450)
    frames = [make_frame(PERSON, 200, 300, seed=i) for i in range(3)]
    result = align_poses(ref, frames, "limbs")
    out, drv = result.frames[0], frames[0]
    scale_forearm = 1.5  # every reference bone is 1.5x the driving one
    wrist_out = out.body[0, 7] * [300, 450]
    hand_out = out.hands[0, 0] * [300, 450] - wrist_out
    hand_drv = (drv.hands[0, 0] - drv.body[0, 7]) * [200, 300]
    np.testing.assert_allclose(hand_out, hand_drv * scale_forearm, atol=1e-9)
    # the face map reproduces the aligned face from the driving face points
    scale, offset = result.face_maps[0]
    np.testing.assert_allclose(drv.face[0] * scale + offset, out.face[0], atol=1e-12)


@pytest.mark.parametrize("mode", ["global", "none"])
def test_face_maps_match_the_aligned_faces(mode):
    ref = make_frame(PERSON * 1.3, 300, 450)
    frames = [make_frame(PERSON + [10 * i, 0], 200, 300, seed=i) for i in range(3)] + [None]
    result = align_poses(ref, frames, mode)
    assert result.frames[-1] is None and result.face_maps[-1] is None
    for f, out, (scale, offset) in zip(frames[:-1], result.frames, result.face_maps):
        np.testing.assert_allclose(f.face * scale + offset, out.face)


def test_unknown_mode():
    with pytest.raises(ValueError, match="global"):
        align_poses(make_frame(PERSON, 200, 300), [], "affine")
