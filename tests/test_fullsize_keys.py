"""Every full-size model built on ``meta`` has exactly the released checkpoints' key names and shapes."""

from __future__ import annotations

import json

import pytest
import torch

from stableanimator_core.checkpoints import build_on_meta
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
