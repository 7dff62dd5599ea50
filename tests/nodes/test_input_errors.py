"""Faults inside the nodes and the core turn into the pack's own errors saying what to do (issue 12, items 5-6)."""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.errors import CheckpointError, InputError
from stableanimator_core.pose import DWPose, from_openpose_json


def test_swapped_detector_and_estimator_are_named(tiny_models_dir):
    folder = tiny_models_dir / "stableanimator" / "DWPose"
    with pytest.raises(CheckpointError, match="swapped"):
        DWPose(str(folder / "dw-ll_ucoco_384.onnx"), str(folder / "yolox_l.onnx"), provider="cpu")
    DWPose(str(folder / "yolox_l.onnx"), str(folder / "dw-ll_ucoco_384.onnx"), provider="cpu")  # the right way


def test_integer_tensors_in_a_safetensors_file_are_a_checkpoint_error(tiny_models_dir, tmp_path):
    from safetensors.torch import save_file

    from stableanimator_core.loading.checkpoints import load_state_dict
    from stableanimator_core.loading.components import load_pose_net

    sd = load_state_dict(tiny_models_dir / "stableanimator" / "Animation" / "pose_net.pth")
    bad = {k: (v.to(torch.int64) if i == 0 else v) for i, (k, v) in enumerate(sd.items())}
    save_file(bad, str(tmp_path / "pose_net.safetensors"))
    with pytest.raises(CheckpointError, match="wrong kind .*int64"):
        load_pose_net(tmp_path / "pose_net.safetensors")


@pytest.mark.parametrize("keypoints, message", [
    ([{"people": [], "canvas_width": 0, "canvas_height": 512}], "positive canvas size"),
    ([{"people": "nobody", "canvas_width": 512, "canvas_height": 512}], "must be a list of dicts"),
    ([{"people": [{"pose_keypoints_2d": [1.0, 2.0]}], "canvas_width": 512, "canvas_height": 512}], "frame 0 is malformed"),
    ([{"people": [{"pose_keypoints_2d": ["a", "b", "c"]}], "canvas_width": 8, "canvas_height": 8}], "frame 0 is malformed"),
    (["not a dict"], "frame 0 is a str"),
    (42, "must be a list of frame dicts"),
])
def test_malformed_pose_keypoints_are_input_errors(keypoints, message):
    with pytest.raises(InputError, match=message):
        from_openpose_json(keypoints)


def test_pose_from_keypoints_node_with_a_zero_canvas(nodes):
    with pytest.raises(Exception, match="positive canvas size"):
        nodes["StableAnimatorPoseFromKeypoints"]().draw([{"people": [], "canvas_width": 0, "canvas_height": 0}],
                                                        "global", "empty")


def test_empty_latent_is_an_input_error(nodes, load_model):
    model = load_model()
    with pytest.raises(Exception, match="no latent frames to decode"):
        nodes["StableAnimatorDecode"]().decode(model, {"samples": torch.zeros(0, 4, 16, 8)}, 4)


def test_overlap_not_below_tile_size_is_refused_not_clamped(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=5)
    with pytest.raises(Exception, match=r"tile_overlap \(4\) must be below tile_size \(4\)"):
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 1, 3.0, 4, 4)


def test_hjb_start_beyond_the_steps_is_refused_not_silently_off(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=2)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 1, 5, 20, 0.1, "faithful", 4)[0]
    masks = torch.zeros(2, 128, 64)
    masks[:, 10:40, 10:40] = 1
    with pytest.raises(Exception, match=r"start_step 5 is beyond the last step \(2 of 3 steps\)"):
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 3, 3.0, 16, 4, hjb=hjb, face_masks=masks)


def test_tiny_reference_in_the_nodes_is_an_input_error(nodes, load_model):
    model = load_model()
    with pytest.raises(Exception, match="the reference image is 1x1 pixels"):
        nodes["StableAnimatorCLIPEncode"]().encode(model, torch.rand(1, 1, 1, 3))


def test_cpu_allocation_failure_in_a_node_stage_gives_advice(pack):
    stage = pack.nodes.gpu_session
    errors = pack.stableanimator_core.errors
    with pytest.raises(errors.OutOfMemoryError, match="Out of system memory \\(RAM\\) during decoding.*decode_chunk"):
        with stage.gpu_stage([], "decoding", stage.DECODE_ADVICE):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")
    with pytest.raises(ValueError, match="unrelated"):  # other errors pass through unchanged
        with stage.gpu_stage([], "decoding", stage.DECODE_ADVICE):
            raise ValueError("unrelated")
