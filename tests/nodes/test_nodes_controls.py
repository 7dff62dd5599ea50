"""Issue-17 controls through the nodes: strengths and ranges on the conditioning, the first-frame fix end to end,
the first-pose check on the keypoint node."""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.pose import to_openpose_json
from stableanimator_core.testing.pose_frames import PERSON, make_frame

SAMPLE = dict(seed=1, steps=2, guidance=3.0, tile_size=3, tile_overlap=1)
ARMS_UP = PERSON.copy()
ARMS_UP[[3, 6]] = [(70, 35), (130, 35)]  # elbows up at the head
ARMS_UP[[4, 7]] = [(68, 5), (132, 5)]  # wrists above it


def test_controls_default_to_the_official_conditioning(nodes, load_model, condition):
    model = load_model()
    old_style, latent = condition(model, frames=4)  # a workflow saved before the controls
    explicit, latent2 = condition(model, frames=4, id_strength=1.0, pose_strength=1.0, first_frame_fix=False)
    assert old_style.cond.identity.is_official and old_style.cond.pose.is_official
    assert set(latent) == set(latent2) == {"samples"}
    a = nodes["StableAnimatorSampler"]().sample(model, old_style, latent, **SAMPLE)[0]["samples"]
    b = nodes["StableAnimatorSampler"]().sample(model, explicit, latent2, **SAMPLE)[0]["samples"]
    assert torch.equal(a, b)


def test_strengths_and_ranges_reach_the_sampler(nodes, load_model, condition, errors):
    model = load_model()
    base, latent = condition(model, frames=4)
    weak, _ = condition(model, frames=4, id_strength=0.0, pose_strength=0.5, pose_end_percent=0.5)
    assert (weak.cond.identity.strength, weak.cond.pose.strength, weak.cond.pose.end_percent) == (0.0, 0.5, 0.5)
    a = nodes["StableAnimatorSampler"]().sample(model, base, latent, **SAMPLE)[0]["samples"]
    b = nodes["StableAnimatorSampler"]().sample(model, weak, latent, **SAMPLE)[0]["samples"]
    assert torch.isfinite(b).all() and not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(errors.InputError, match="start <= end"):
        condition(model, frames=4, pose_start_percent=0.8, pose_end_percent=0.2)


def test_first_frame_fix_keeps_the_frame_count(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=4, first_frame_fix=True)
    # one more frame is generated, on a copy of the first pose ...
    assert latent["samples"].shape[0] == 5 and cond.cond.num_frames == 5 and cond.cond.output_frames == 4
    assert torch.equal(cond.cond.pose_frames[0], cond.cond.pose_frames[1])
    out = nodes["StableAnimatorSampler"]().sample(model, cond, latent, **SAMPLE)[0]
    assert out["samples"].shape[0] == 5 and out["stableanimator_leading_frames"] == 1
    # ... and dropped: the video has as many frames as there are driving poses
    frames = nodes["StableAnimatorDecode"]().decode(model, out, 4)[0]
    assert frames.shape == (4, 128, 64, 3)
    kept = nodes["StableAnimatorDecode"]().decode(model, {"samples": out["samples"][1:]}, 4)[0]
    assert torch.equal(frames, kept)  # exactly the frames after the first


def test_first_frame_fix_with_hjb_masks_per_driving_frame(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=3, first_frame_fix=True)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1,
                                                      "memory_bounded", 2)[0]
    masks = torch.zeros(3, 128, 64)  # one per driving frame, as DWPose gives them
    masks[:, 20:60, 10:50] = 1.0
    out = nodes["StableAnimatorSampler"]().sample(model, cond, latent, **SAMPLE, hjb=hjb, face_masks=masks)[0]
    assert out["samples"].shape[0] == 4 and torch.isfinite(out["samples"]).all()


def _keypoints(bodies, width, height):
    return to_openpose_json([make_frame(b, width, height) for b in bodies])


@pytest.mark.parametrize("first, warns", [("standing", False), ("arms up", True)])
def test_keypoint_node_shows_the_first_pose_check(nodes, first, warns, caplog):
    start = PERSON if first == "standing" else ARMS_UP
    # the driving person is filmed smaller and further right on a wider canvas; alignment undoes that
    clip = [b * 0.8 + [60, 20] for b in [start, PERSON, ARMS_UP, PERSON, ARMS_UP, PERSON]]
    out = nodes["StableAnimatorPoseFromKeypoints"]().draw(_keypoints(clip, 400, 300), "global", "empty",
                                                          reference_keypoints=_keypoints([PERSON], 200, 300))
    [line] = out["ui"]["stableanimator_text"]
    assert (line["level"] == "warning") == warns
    assert ("differs from the reference pose" in line["text"]) == warns
    assert ("first-pose check: the first driving pose differs" in caplog.text) == warns
    assert out["result"][0].shape[0] == 6


@pytest.mark.parametrize("framing, crop_on, shape", [("stretch", "center", (1, 120, 90, 3)),
                                                     ("crop", "center", (1, 90, 90, 3)),
                                                     ("pad", "center", (1, 120, 120, 3))])
def test_frame_reference_node(nodes, framing, crop_on, shape):
    g = torch.Generator().manual_seed(0)
    photo = torch.rand((1, 120, 90, 3), generator=g)
    framed, width, height = nodes["StableAnimatorFrameReference"]().frame(photo, 512, 512, framing, crop_on,
                                                                           "DWPose/yolox_l.onnx", "cpu")
    assert tuple(framed.shape) == shape and (width, height) == (512, 512)
    if framing == "stretch":
        assert torch.equal(framed, photo)  # the official path: untouched
    if framing == "crop":  # the middle 90 rows, as the photo's own (8-bit) pixels
        assert torch.allclose(framed, photo[:, 15:105], atol=0.5 / 255)
