"""Preprocessing nodes called directly with the tiny models folder (mock DWPose/antelopev2 ONNX models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stableanimator_core.io.video import read_frames, read_image

INPUTS = Path(__file__).resolve().parents[2] / "example_workflows" / "inputs"


def _as_image(frames):
    return torch.from_numpy(np.stack(frames)).float() / 255.0


@pytest.fixture(scope="module")
def media():
    reference = read_image(INPUTS / "stableanimator_reference.png")
    driving, _ = read_frames(INPUTS / "stableanimator_driving.mp4", max_frames=4)
    return _as_image([reference]), _as_image(driving)


def _dwpose(nodes, driving, reference, **kw):
    args = dict(detector="DWPose/yolox_l.onnx", estimator="DWPose/dw-ll_ucoco_384.onnx", align="global",
                missing_person="empty", several_people="largest", face_masks_from="skeleton", provider="cpu")
    args.update(kw)
    return nodes["StableAnimatorDWPose"]().extract(driving, reference, **args)


def test_dwpose_node_outputs(nodes, media):
    reference, driving = media
    out = _dwpose(nodes, driving, reference)
    skeletons, keypoints, masks = out["result"]
    assert skeletons.shape == (4, 320, 320, 3) and skeletons.dtype == torch.float32
    assert skeletons.max() > 0.5  # something was drawn
    assert len(keypoints) == 4 and keypoints[0]["canvas_width"] == 320
    assert masks.shape == (4, 320, 320) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert "stableanimator_pose_preview" not in out["ui"]  # no preview files outside ComfyUI
    [check] = out["ui"]["stableanimator_text"]  # the first-pose check, shown on the node
    assert check["text"].startswith("first-pose check:") and check["level"] in ("info", "warning")


def test_keypoints_redraw_to_the_same_skeletons(nodes, media):
    reference, driving = media
    skeletons, keypoints, masks = _dwpose(nodes, driving, reference)["result"]
    out = nodes["StableAnimatorPoseFromKeypoints"]().draw(keypoints, "none", "empty")
    redrawn, masks2 = out["result"]
    assert out["ui"] == {}  # no reference keypoints: no first-pose check
    assert redrawn.shape == skeletons.shape
    assert (redrawn - skeletons).abs().max() <= 2 / 255  # keypoints JSON rounds coordinates
    assert torch.equal(masks2, masks)


def test_dwpose_missing_person_policy_error(nodes, media, errors):
    reference, _ = media
    dark = torch.zeros(3, 64, 64, 3)
    with pytest.raises(errors.NoPersonError, match="frame 0"):
        _dwpose(nodes, dark, reference, missing_person="error")
    with pytest.raises(errors.NoPersonError, match="no person found in any"):
        _dwpose(nodes, dark, reference, missing_person="empty")


def test_face_embed_identity_and_no_identity(nodes, media):
    reference, _ = media
    face, mask = nodes["StableAnimatorFaceEmbed"]().embed(reference, "identity", "cpu")
    assert face.embedding.shape == (512,) and np.isfinite(face.embedding).all()
    y0, y1, x0, x1 = face.box
    assert 0 <= y0 < y1 < 320 and 0 <= x0 < x1 < 320
    assert mask.shape == (1, 320, 320) and mask.sum() == (y1 - y0 + 1) * (x1 - x0 + 1)
    none, empty = nodes["StableAnimatorFaceEmbed"]().embed(reference, "no_identity", "cpu")
    assert none.embedding is None and empty.sum() == 0


def test_face_embed_without_a_face_says_so(nodes, errors):
    with pytest.raises(errors.NoFaceError, match="No face found in the reference image"):
        nodes["StableAnimatorFaceEmbed"]().embed(torch.zeros(1, 96, 96, 3), "identity", "cpu")


def test_dwpose_node_official_preset_is_the_official_pose_options(nodes, media, standalone_models):
    from stableanimator_core.pipeline.conditioning import to_uint8_rgb
    from stableanimator_core.pose import DWPose, extract_poses, render_skeletons
    from stableanimator_core.pose.extraction import OFFICIAL_POSE_OPTIONS

    reference, driving = media
    frames = torch.cat([driving[:2], torch.zeros(1, *driving.shape[1:]), driving[2:]])  # one frame without anyone
    # the widgets say otherwise; the preset wins
    out = _dwpose(nodes, frames, reference, preset="official", several_people="largest", missing_person="error")
    root = Path(standalone_models) / "stableanimator" / "DWPose"
    model = DWPose(str(root / "yolox_l.onnx"), str(root / "dw-ll_ucoco_384.onnx"), provider="cpu")
    seq = extract_poses(to_uint8_rgb(reference[0]), [to_uint8_rgb(f) for f in frames], model, **OFFICIAL_POSE_OPTIONS)
    expected = torch.from_numpy(np.stack(list(render_skeletons(seq)))).float() / 255.0
    assert torch.equal(out["result"][0], expected)
    assert seq.aligned[2].num_people == 1  # the whole-image pose, as the official tool keeps it


def test_face_embed_official_preset(nodes, media):
    reference, _ = media
    face, mask = nodes["StableAnimatorFaceEmbed"]().embed(reference, "identity", "cpu", preset="official")
    pack, _ = nodes["StableAnimatorFaceEmbed"]().embed(reference, "identity", "cpu")
    assert not np.allclose(face.embedding, pack.embedding)  # RGB fed to insightface, as the official script
    blank, blank_mask = nodes["StableAnimatorFaceEmbed"]().embed(torch.zeros(1, 96, 96, 3), "identity", "cpu",
                                                                 preset="official")
    assert not blank.embedding.any() and blank.embedding.shape == (512,)  # the zero embedding, not zero tokens
    assert blank.box == (0, 95, 0, 95) and blank_mask.sum() == 96 * 96  # the official all-255 reference mask
    none, _ = nodes["StableAnimatorFaceEmbed"]().embed(torch.zeros(1, 96, 96, 3), "identity", "cpu",
                                                       no_face="zero_tokens")
    assert none.embedding is None


def test_dwpose_node_keeps_outputs_at_the_generation_size(nodes, media):
    """Skeletons and masks at width x height (not the reference's size, 320x320 here), and exactly what the
    conditioning and the sampler would have made of the reference-size outputs."""
    from stableanimator_core.hjb import target_boxes_from_masks
    from stableanimator_core.pipeline.conditioning import pose_tensor

    reference, driving = media
    full, _, full_masks = _dwpose(nodes, driving, reference)["result"]
    small, _, masks = _dwpose(nodes, driving, reference, width=192, height=256)["result"]
    assert small.shape == (4, 256, 192, 3) and small.dtype == torch.float32
    assert masks.shape == (4, 256, 192)
    assert torch.equal(pose_tensor(list(small), 192, 256).to_tensor(), pose_tensor(list(full), 192, 256).to_tensor())
    assert target_boxes_from_masks(masks, 4, 256, 192) == target_boxes_from_masks(full_masks, 4, 256, 192)
