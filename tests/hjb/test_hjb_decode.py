"""Decoder helpers for HJB: receptive radius (fast mode's default margin) and the official post-processing."""

import json

import pytest
import torch

from stableanimator_core.hjb import conv_receptive_radius, to_face_range


def _vae_on_meta(config: dict):
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        return AutoencoderKLTemporalDecoder(**{k: v for k, v in config.items() if not k.startswith("_")})


def test_receptive_radius_of_the_svd_xt_and_tiny_decoders(parity):
    full = json.loads((parity / "fullsize_keys.json").read_text())["_notes"]["configs"]["vae"]
    # 1 (conv_in) + 4 (mid) + 6 + 3 + 1.5 + 0.75 (up blocks) + 0.875 (upsampler convs) + 0.125 (conv_out) = 17.25
    assert conv_receptive_radius(_vae_on_meta(full).decoder) == 18
    tiny = json.loads((parity / "weights" / "configs.json").read_text())["vae"]
    # one resnet per mid block, two per up block: 1 + 2 + 4 + 2 + 1 + 0.5 + 0.875 + 0.125 = 11.5
    assert conv_receptive_radius(_vae_on_meta(tiny).decoder) == 12


def test_to_face_range_is_the_official_clamp_and_keeps_gradients_inside():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0], requires_grad=True)
    y = to_face_range(x)
    official = (((x.detach() / 2 + 0.5).clamp(0, 1) * 255).clamp(0, 255) / 255 - 0.5) / 0.5
    assert torch.equal(y.detach(), official)
    assert y.detach().tolist() == pytest.approx([-1.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.0], abs=1e-6)
    y.sum().backward()
    # saturated pixels get no gradient (the official clamp), the others a unit one
    assert x.grad.tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], abs=1e-6)
