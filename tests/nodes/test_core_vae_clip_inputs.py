"""The nodes' optional core VAE / CLIP vision inputs, and the Model Loader without an SVD folder.

ComfyUI's own VAE and CLIP vision objects run in real ComfyUI in tests/e2e/test_e2e_core_models.py. Here the VAE is
an object with ComfyUI's VAE interface as far as the pack reads it (``get_sd()``: the weights in ComfyUI's key
layout), so that the wiring and the errors are checked without ComfyUI.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch


class ComfyLayoutVAE:
    """What the pack reads of a ComfyUI ``VAE``: ``get_sd()``, the first-stage model's weights in ComfyUI's names."""

    def __init__(self, diffusers_vae):
        from stableanimator_core.loading.core_vae_layout import diffusers_to_comfy

        sd = dict(diffusers_vae.state_dict())
        z = sd["quant_conv.weight"].shape[0]
        sd["quant_conv.weight"] = torch.eye(z).reshape(z, z, 1, 1)  # the original layout has no quant_conv
        sd["quant_conv.bias"] = torch.zeros(z)
        self.sd = diffusers_to_comfy(sd)
        self.calls = 0

    def get_sd(self):
        self.calls += 1
        return self.sd


def _identity_quant_conv(model):
    with torch.no_grad():
        q = model.models.vae.quant_conv
        q.weight.copy_(torch.eye(q.weight.shape[0]).reshape(q.weight.shape))
        q.bias.zero_()
    return model


def _without_svd_folder(payloads, model):
    models = dataclasses.replace(model.models, vae=None, image_encoder=None)
    return payloads.ModelHandle.wrap(models, model.dtype, name=model.name)


def test_a_connected_vae_is_used_and_converted_once(nodes, load_model, condition, payloads):
    model = _identity_quant_conv(load_model())
    core_vae = ComfyLayoutVAE(model.models.vae)
    cond, latent = condition(model, frames=3)
    out = nodes["StableAnimatorSampler"]().sample(model, cond, latent, seed=1, steps=1, guidance=3.0, tile_size=3,
                                                  tile_overlap=1)[0]
    own = nodes["StableAnimatorDecode"]().decode(model, out, 3)[0]
    bare = _without_svd_folder(payloads, model)
    via_core = nodes["StableAnimatorDecode"]().decode(bare, out, 3, vae=core_vae)[0]
    again = nodes["StableAnimatorDecode"]().decode(bare, out, 3, vae=core_vae)[0]
    assert torch.equal(via_core, own) and torch.equal(again, own)
    assert core_vae.calls == 1  # one pack VAE per core VAE object


def test_reference_encoding_with_a_connected_vae(nodes, load_model, condition, payloads):
    model = _identity_quant_conv(load_model())
    own, _ = condition(model, frames=2)
    via_core, _ = condition(model, frames=2, vae=ComfyLayoutVAE(model.models.vae))
    assert torch.equal(own.cond.image_latents, via_core.cond.image_latents)


def test_without_the_svd_folder_each_stage_says_what_to_connect(nodes, load_model, condition, payloads, errors):
    model = load_model()
    cond, latent = condition(model, frames=2)
    bare = _without_svd_folder(payloads, model)
    ref = torch.rand(1, 64, 64, 3)
    with pytest.raises(errors.InputError, match="connect a core CLIP_VISION to 'clip_vision'"):
        nodes["StableAnimatorCLIPEncode"]().encode(bare, ref)
    clip = nodes["StableAnimatorCLIPEncode"]().encode(model, ref)[0]
    face = payloads.FaceIdentity(embedding=None, box=None, image_hw=(64, 64))
    with pytest.raises(errors.InputError, match="Reference encoding needs SVD's VAE.*connect a core VAE to 'vae'"):
        nodes["StableAnimatorConditioning"]().condition(bare, ref, clip, face, torch.rand(2, 64, 64, 3), 64, 128, 7,
                                                         127, 0.02, 1)
    with pytest.raises(errors.InputError, match="Decoding needs SVD's VAE"):
        nodes["StableAnimatorDecode"]().decode(bare, latent, 2)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1, "faithful", 4)[0]
    masks = torch.ones(2, 128, 64)
    with pytest.raises(errors.InputError, match="HJB .* needs SVD's VAE"):
        nodes["StableAnimatorSampler"]().sample(bare, cond, latent, 1, 1, 3.0, 16, 4, hjb=hjb, face_masks=masks)


def test_an_image_vae_is_refused_with_what_to_use(nodes, load_model, payloads, errors):
    model = load_model()

    class SDImageVAE:
        def get_sd(self):
            return {"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3), "decoder.mid.block_1.conv1.weight":
                    torch.zeros(512, 512, 3, 3)}

    latent = {"samples": torch.zeros(2, 4, 16, 8)}
    with pytest.raises(errors.InputError, match="SVD-xt's temporal VAE, not an SD / SDXL image VAE"):
        nodes["StableAnimatorDecode"]().decode(model, latent, 2, vae=SDImageVAE())


def test_the_loader_offers_no_svd_folder(nodes, standalone_models, errors):
    loader = nodes["StableAnimatorModelLoader"]
    choices = loader.INPUT_TYPES()["required"]["svd"][0]
    assert choices[0] == "stableanimator/SVD" and choices[-1] == "none"
    assert "none" in loader.IS_CHANGED("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth",
                                       "none", "fp32")
    # without the folder the UNet has SVD-xt's architecture (the released unet.pth); the tiny test UNet is refused
    with pytest.raises(errors.CheckpointError, match="does not match the StableAnimatorUNet architecture"):
        loader().load("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth", "none", "fp32")


def test_a_vae_held_in_bf16_is_used_and_said(nodes, load_model, caplog):
    model = _identity_quant_conv(load_model())
    core_vae = ComfyLayoutVAE(model.models.vae)
    core_vae.sd = {k: v.to(torch.bfloat16) for k, v in core_vae.sd.items()}
    latent = {"samples": torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(0))}
    frames = nodes["StableAnimatorDecode"]().decode(model, latent, 2, vae=core_vae)[0]
    assert frames.shape == (2, 128, 64, 3) and torch.isfinite(frames).all()
    assert "holds bfloat16 weights" in caplog.text and "--fp32-vae" in caplog.text


def test_hjb_decodes_faces_with_the_connected_vae(nodes, load_model, condition, payloads):
    """The HJB node's 'vae' stands in for the Model Loader's VAE: the same refined latents with the same weights."""
    model = _identity_quant_conv(load_model())
    cond, latent = condition(model, frames=3)
    masks = torch.zeros(3, 128, 64)
    masks[:, 16:48, 16:48] = 1.0

    def refined(handle, vae=None):
        hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1,
                                                          "memory_bounded", 2, vae=vae)[0]
        return nodes["StableAnimatorSampler"]().sample(handle, cond, latent, 1, 1, 3.0, 16, 4, hjb=hjb,
                                                       face_masks=masks)[0]["samples"]

    own = refined(model)
    via_core = refined(_without_svd_folder(payloads, model), ComfyLayoutVAE(model.models.vae))
    assert torch.equal(own, via_core)
