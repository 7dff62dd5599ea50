"""SVD's VAE in ComfyUI's key layout (a core VAE, svd_xt.safetensors) loads into the pack's VAE unchanged.

That ComfyUI's own implementation computes the same with these weights is checked in real ComfyUI
(tests/e2e/test_e2e_core_models.py); here: the renaming is lossless and complete, and refuses what it cannot hold.
"""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.errors import CheckpointError
from stableanimator_core.loading import core_vae_layout as L
from stableanimator_core.loading.components import load_vae, svd_component, vae_from_comfy_layout

# SVD-xt's own VAE architecture (diffusers' vae/config.json of stable-video-diffusion-img2vid-xt)
SVD_XT_VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
              "layers_per_block": 2, "latent_channels": 4, "in_channels": 3, "out_channels": 3}


@pytest.fixture(scope="module")
def tiny_vae(tiny_models_dir):
    """The tiny VAE with an identity quant_conv, as SVD's has: the original model has none to convert."""
    vae = load_vae(*svd_component(tiny_models_dir / "stableanimator" / "SVD", "vae"))
    z = vae.quant_conv.weight.shape[0]
    with torch.no_grad():
        vae.quant_conv.weight.copy_(torch.eye(z).reshape(z, z, 1, 1))
        vae.quant_conv.bias.zero_()
    return vae


def test_the_svd_xt_architecture_has_comfyuis_key_names():
    """The key names and shapes ComfyUI's VAE (comfy/sd.py, the "decoder.mid.block_1.mix_factor" branch) holds for
    SVD: spot checks of each renamed kind, and the count (ComfyUI's AutoencodingEngine for SVD has 372 tensors)."""
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        model = AutoencoderKLTemporalDecoder(**SVD_XT_VAE)
    sd = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
    sd["quant_conv.weight"] = torch.eye(8).reshape(8, 8, 1, 1)
    core = L.diffusers_to_comfy(sd)
    assert len(core) == 372
    assert core["decoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert core["decoder.up.0.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)
    assert core["decoder.up.3.upsample.conv.weight"].shape == (512, 512, 3, 3)
    assert core["decoder.up.0.block.2.time_stack.out_layers.3.weight"].shape == (128, 128, 3, 1, 1)
    assert core["decoder.conv_out.time_mix_conv.weight"].shape == (3, 3, 3, 1, 1)
    assert core["encoder.down.1.block.0.nin_shortcut.weight"].shape == (256, 128, 1, 1)
    assert "decoder.mid.block_2.mix_factor" in core and "quant_conv.weight" not in core
    assert L.is_comfy_layout(core) and not L.is_comfy_layout(sd)


def test_a_comfy_layout_vae_loads_into_the_same_pack_vae(tiny_vae):
    core = {f"first_stage_model.{k}": v for k, v in L.diffusers_to_comfy(tiny_vae.state_dict()).items()}
    core["model.diffusion_model.x.weight"] = torch.zeros(1)  # a whole svd_xt.safetensors: the rest is ignored
    rebuilt = vae_from_comfy_layout(core, "svd_xt.safetensors")
    assert rebuilt.config.block_out_channels == tiny_vae.config.block_out_channels
    assert rebuilt.config.layers_per_block == tiny_vae.config.layers_per_block
    original, copy = tiny_vae.state_dict(), rebuilt.state_dict()
    assert set(original) == set(copy) and all(torch.equal(original[k], copy[k]) for k in original)
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(rebuilt.decode(z, num_frames=3).sample, tiny_vae.decode(z, num_frames=3).sample)
    assert rebuilt.dtype == torch.float32


def test_fp16_comfy_weights_give_a_float32_vae(tiny_vae):
    core = {k: v.half() for k, v in L.diffusers_to_comfy(tiny_vae.state_dict()).items()}
    assert vae_from_comfy_layout(core, "vae").dtype == torch.float32


def test_an_image_vae_or_a_changed_quant_conv_is_refused(tiny_vae):
    sd = {k: v.clone() for k, v in tiny_vae.state_dict().items()}
    with pytest.raises(CheckpointError, match="not SVD's temporal VAE"):
        vae_from_comfy_layout(sd, "an SD VAE")  # diffusers keys, no temporal decoder in ComfyUI's names
    sd["quant_conv.weight"] = sd["quant_conv.weight"] * 2
    with pytest.raises(CheckpointError, match="quant_conv"):
        L.diffusers_to_comfy(sd)
    core = L.diffusers_to_comfy(tiny_vae.state_dict())
    core["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="decoder.extra.weight"):
        L.comfy_to_diffusers(core)
