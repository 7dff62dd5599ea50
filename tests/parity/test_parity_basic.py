"""Run A of the parity fixture (basic pipeline, tiled) reproduced stage by stage through the replay command."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from stableanimator_core.parity import replay as parity_cmd


@pytest.fixture(scope="module")
def replay_a(parity, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay_A")
    assert parity_cmd.main(["replay", str(parity), "A_basic_tiled", str(out)]) == 0
    return out


def test_replay_writes_required_tensors_and_meta(replay_a):
    ours = load_file(str(replay_a / "tensors.safetensors"))
    for key in ("clip_image_embeds", "face_encoder_out", "posenet_out_window0", "latents_after_step0",
                "latents_after_step2", "final_latents", "frames_float"):
        assert key in ours, key
    meta = json.loads((replay_a / "meta.json").read_text())
    assert meta["hjb_losses"] is None
    assert meta["settings"]["tile_size"] == 4


def test_every_recorded_tensor_within_tolerance(parity, replay_a):
    ok, rows = parity_cmd.compare(parity, "A_basic_tiled", replay_a)
    failing = [r for r in rows if not r["ok"]]
    assert ok, parity_cmd.format_rows(failing)
    compared = {r["tensor"] for r in rows}
    # stage by stage: conditioning, pose, both UNet calls, every step, outputs
    for key in ("clip_pixel_values", "vae_encoder_input", "face_encoder_out", "posenet_out_window0",
                "unet_call0_uncond_out", "unet_call1_cond_out", "step0_model_output_guided",
                "step2_prev_sample", "final_latents", "frames_float"):
        assert key in compared, key


def test_final_frames_max_abs(parity, replay_a):
    ours = load_file(str(replay_a / "tensors.safetensors"))["frames_float"]
    theirs = load_file(str(parity / "A_basic_tiled" / "tensors.safetensors"))["frames_float"]
    assert ours.shape == theirs.shape == (9, 128, 64, 3)
    assert (ours - theirs).abs().max().item() <= parity_cmd.FRAMES_ABS_TOL


def test_compare_detects_a_wrong_replay(parity, replay_a, tmp_path):
    """The comparison must be able to fail: perturb one recorded tensor slightly beyond 1e-4 relative."""
    ours = load_file(str(replay_a / "tensors.safetensors"))
    ours["face_encoder_out"] = ours["face_encoder_out"] * (1 + 3e-4)
    from safetensors.torch import save_file

    save_file(ours, str(tmp_path / "tensors.safetensors"))
    (tmp_path / "meta.json").write_text((replay_a / "meta.json").read_text())
    ok, rows = parity_cmd.compare(parity, "A_basic_tiled", tmp_path)
    assert not ok
    assert [r["tensor"] for r in rows if not r["ok"]] == ["face_encoder_out"]
