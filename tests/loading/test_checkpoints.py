"""Checkpoint loading: strict, weights-only, and failures that name the file and say what to do."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file, save_file

from stableanimator_core.loading.checkpoints import load_state_dict
from stableanimator_core.errors import CheckpointError
from stableanimator_core.loading.components import load_face_encoder, load_pose_net, load_unet


class _Payload:
    """A pickle that would create a file when unpickled: loading must refuse it without running it."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "executed"
    bad = tmp_path / "pose_net.pth"
    torch.save({"conv_layers.0.weight": torch.zeros(1), "evil": _Payload(marker)}, bad)
    with pytest.raises(CheckpointError, match="Refused to load pose_net.pth") as err:
        load_pose_net(bad)
    assert str(tmp_path) in str(err.value)
    assert not marker.exists()


def test_missing_file_names_file_folder_and_source(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_unet(tmp_path / "Animation" / "unet.pth")
    msg = str(err.value)
    assert "unet.pth" in msg and str(tmp_path / "Animation") in msg
    assert "huggingface.co/FrancisRing/StableAnimator" in msg


def test_truncated_file(parity, tmp_path):
    sd = load_file(str(parity / "weights" / "pose_net.safetensors"))
    good = tmp_path / "pose_net.pth"
    torch.save(sd, good)
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or not a checkpoint.*Download it again"):
        load_pose_net(tmp_path / "cut.pth")
    st = tmp_path / "cut.safetensors"
    st.write_bytes((parity / "weights" / "pose_net.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_pose_net(st)


def test_wrong_architecture_is_reported(parity):
    cfg = json.loads((parity / "weights" / "configs.json").read_text())["unet"]
    with pytest.raises(CheckpointError, match=r"pose_net.safetensors does not match the StableAnimatorUNet") as err:
        load_unet(parity / "weights" / "pose_net.safetensors", cfg)
    assert "missing keys" in str(err.value) and "conv_in.weight" in str(err.value)


def test_safetensors_with_missing_keys_lists_them(parity, tmp_path):
    sd = load_file(str(parity / "weights" / "face_encoder.safetensors"))
    del sd["fusion_model.layers.2.0.to_q.weight"], sd["fusion_model.norm_out.bias"]
    save_file(sd, str(tmp_path / "face_encoder.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_face_encoder(tmp_path / "face_encoder.safetensors")
    msg = str(err.value)
    assert "2 missing keys" in msg
    assert "fusion_model.layers.2.0.to_q.weight" in msg and "fusion_model.norm_out.bias" in msg


def test_pth_and_safetensors_and_fp16_load_the_same_weights(parity, tmp_path):
    cfg = json.loads((parity / "weights" / "configs.json").read_text())["unet"]
    sd = load_file(str(parity / "weights" / "unet.safetensors"))
    torch.save(sd, tmp_path / "unet.pth")
    torch.save({k: v.half() for k, v in sd.items()}, tmp_path / "unet_fp16.pth")
    a = load_unet(parity / "weights" / "unet.safetensors", cfg)
    b = load_unet(tmp_path / "unet.pth", cfg)
    c = load_unet(tmp_path / "unet_fp16.pth", cfg, dtype=torch.float16)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
        assert vc.dtype == torch.float16 and torch.equal(vc, va.half()), k
    assert not any(p.requires_grad for p in a.parameters())
    assert not any(p.is_meta for p in a.parameters())


def test_wrapped_and_prefixed_state_dicts_are_unwrapped(parity, tmp_path):
    sd = load_file(str(parity / "weights" / "pose_net.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pth")
    loaded = load_state_dict(tmp_path / "wrapped.pth")
    assert sorted(loaded) == sorted(sd)
