"""Every full-size model built on ``meta`` has exactly the released checkpoints' key names and shapes."""

from __future__ import annotations

import json

import pytest
import torch

from stableanimator_core.loading.checkpoints import build_on_meta
from stableanimator_core.models.face_encoder import FusionFaceId
from stableanimator_core.models.pose_net import PoseNet
from stableanimator_core.models.unet import StableAnimatorUNet, UNetConfig


@pytest.fixture(scope="module")
def fullsize(parity):
    return json.loads((parity / "fullsize_keys.json").read_text())


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _expected(fullsize, name):
    return {k: v["shape"] for k, v in fullsize[name]["keys"].items()}


def _assert_same(model, fullsize, name):
    ours, theirs = _shapes(model), _expected(fullsize, name)
    assert sorted(set(theirs) - set(ours)) == [], "missing"
    assert sorted(set(ours) - set(theirs)) == [], "unexpected"
    wrong = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert wrong == {}
    assert len(ours) == fullsize[name]["num_tensors"]
    assert sum(v.numel() for v in model.state_dict().values()) == fullsize[name]["num_elements"]


def test_unet(fullsize):
    cfg = UNetConfig.from_dict(fullsize["_notes"]["configs"]["unet"])
    _assert_same(build_on_meta(lambda: StableAnimatorUNet(cfg)), fullsize, "unet")
    assert fullsize["unet"]["num_elements"] == 1_550_182_122


def test_default_unet_config_is_svd_xt(fullsize):
    _assert_same(build_on_meta(StableAnimatorUNet), fullsize, "unet")


def test_pose_net(fullsize):
    _assert_same(build_on_meta(lambda: PoseNet(320)), fullsize, "pose_net")


def test_face_encoder(fullsize):
    cfg = fullsize["_notes"]["configs"]["face_encoder"]
    _assert_same(build_on_meta(lambda: FusionFaceId(**cfg)), fullsize, "face_encoder")


def test_vae(fullsize):
    from diffusers import AutoencoderKLTemporalDecoder

    cfg = fullsize["_notes"]["configs"]["vae"]
    _assert_same(build_on_meta(lambda: AutoencoderKLTemporalDecoder.from_config(cfg)), fullsize, "vae")


def test_image_encoder(fullsize):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(**fullsize["_notes"]["configs"]["image_encoder"])
    _assert_same(build_on_meta(lambda: CLIPVisionModelWithProjection(cfg)), fullsize, "image_encoder")


VARIANTS = {
    "int_heads": {"num_attention_heads": 2},
    "two_transformer_layers": {"transformer_layers_per_block": 2},
    "per_block_lists": {"layers_per_block": [1, 2, 1, 2], "transformer_layers_per_block": [1, 2, 1, 1],
                        "cross_attention_dim": [128, 128, 128, 128], "num_attention_heads": [1, 2, 4, 2]},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_unet_layout_matches_diffusers_for_other_configs(parity, variant):
    """Our UNet minus the ID adapter has diffusers' SVD UNet layout for any config it accepts (not only SVD-xt's)."""
    from diffusers import UNetSpatioTemporalConditionModel

    cfg = json.loads((parity / "weights" / "configs.json").read_text())["unet"]
    cfg.update(VARIANTS[variant])
    ours = _shapes(build_on_meta(lambda: StableAnimatorUNet(UNetConfig.from_dict(cfg))))
    theirs = _shapes(build_on_meta(lambda: UNetSpatioTemporalConditionModel(**cfg)))
    adapter = {k for k in ours if ".processor.id_to_" in k}
    assert adapter and all(".attn2.processor." in k and ".transformer_blocks." in k for k in adapter)
    assert {k: v for k, v in ours.items() if k not in adapter} == theirs
