"""The generation nodes called directly (as ComfyUI would), with the tiny models folder and real tensors."""

from __future__ import annotations

import pytest
import torch


def test_loader_defaults_point_at_the_official_files(nodes):
    req = nodes["StableAnimatorModelLoader"].INPUT_TYPES()["required"]
    assert req["unet"][0][0] == "Animation/unet.pth"
    assert req["pose_net"][0][0] == "Animation/pose_net.pth"
    assert req["face_encoder"][0][0] == "Animation/face_encoder.pth"
    assert req["svd"][0][0] == "stableanimator/SVD"


def test_full_chain_produces_frames(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model)
    assert latent["samples"].shape == (5, 4, 16, 8)
    out = nodes["StableAnimatorSampler"]().sample(model, cond, latent, seed=1, steps=2, guidance=3.0, tile_size=3,
                                                  tile_overlap=1)[0]
    assert out["samples"].shape == (5, 4, 16, 8) and torch.isfinite(out["samples"]).all()
    assert out["samples"].abs().max() > 0
    frames = nodes["StableAnimatorDecode"]().decode(model, out, 4)[0]
    assert frames.shape == (5, 128, 64, 3) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0
    assert frames.device.type == "cpu"


def test_size_not_multiple_of_64_is_rounded(caplog, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=2, width=70, height=100)
    assert latent["samples"].shape == (2, 4, 16, 8)
    assert "not a multiple of 64" in caplog.text


def test_latent_that_does_not_match_the_conditioning(nodes, load_model, condition, errors):
    model = load_model()
    cond, latent = condition(model, frames=3)
    wrong = {"samples": torch.zeros(4, 4, 16, 8)}
    with pytest.raises(errors.InputError, match="latent has shape .* needs \\(3, 4, 16, 8\\)"):
        nodes["StableAnimatorSampler"]().sample(model, cond, wrong, 1, 1, 3.0, 16, 4)


def test_hjb_without_face_masks_says_what_to_connect(nodes, load_model, condition, errors):
    model = load_model()
    cond, latent = condition(model, frames=2)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1, "faithful", 4)[0]
    with pytest.raises(errors.InputError, match="connect 'face_masks'"):
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 1, 3.0, 16, 4, hjb=hjb)


def test_sampler_with_hjb_and_low_resolution_masks(nodes, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=3)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 2, 0, 0, 0.1,
                                                      "memory_bounded", 2)[0]
    masks = torch.zeros(3, 32, 16)
    masks[:, 4:12, 4:12] = 1.0  # quarter resolution: boxes are rescaled to 128x64
    masks[2] = 0.0  # a frame without a face is skipped, not a crash
    base = nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 2, 3.0, 16, 4)[0]["samples"]
    refined = nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 2, 3.0, 16, 4, hjb=hjb,
                                                      face_masks=masks)[0]["samples"]
    assert torch.isfinite(refined).all()
    assert (refined - base).abs().max() > 1e-3  # HJB changed the result


def test_loader_reruns_when_a_weights_file_changes(nodes, standalone_models):
    loader = nodes["StableAnimatorModelLoader"]
    args = ("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth", "stableanimator/SVD", "auto")
    before = loader.IS_CHANGED(*args)
    assert loader.IS_CHANGED(*args) == before
    unet = standalone_models / "stableanimator" / "Animation" / "unet.pth"
    unet.rename(unet.with_suffix(".bak"))
    try:
        missing = loader.IS_CHANGED(*args)
        assert missing != before and "Animation/unet.pth:missing" in missing
    finally:
        unet.with_suffix(".bak").rename(unet)
    assert loader.IS_CHANGED(*args) == before


def test_loader_fp8_storage_and_automatic_decode_chunk(nodes, condition):
    from stableanimator_core.models.acceleration import weight_storage_bytes

    loader = nodes["StableAnimatorModelLoader"]()
    args = ("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth", "stableanimator/SVD", "fp32")
    plain = loader.load(*args)[0]
    fp8 = loader.load(*args, weight_storage="fp8_e4m3fn")[0]
    assert weight_storage_bytes(fp8.models.unet) < 0.5 * weight_storage_bytes(plain.models.unet)
    cond, latent = condition(fp8, frames=3)
    out = nodes["StableAnimatorSampler"]().sample(fp8, cond, latent, 1, 1, 3.0, 16, 4, batch_cfg=False)[0]
    frames = nodes["StableAnimatorDecode"]().decode(fp8, out, 0)[0]  # 0 = chunk from free memory
    assert frames.shape == (3, 128, 64, 3) and torch.isfinite(frames).all()


def test_official_precision_and_hjb_preset(nodes, condition):
    loader = nodes["StableAnimatorModelLoader"]()
    args = ("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth", "stableanimator/SVD")
    official = loader.load(*args, "official")[0]
    assert official.dtype == torch.float16 and official.decode_dtype == torch.float16  # inference_basic.py
    assert next(official.models.unet.parameters()).dtype == torch.float16
    assert next(official.models.vae.parameters()).dtype == torch.float32  # the encoder stays fp32; decode copies
    cond, latent = condition(official, frames=3)
    out = nodes["StableAnimatorSampler"]().sample(official, cond, latent, 1, 1, 3.0, 16, 4)[0]
    frames = nodes["StableAnimatorDecode"]().decode(official, out, 4)[0]
    assert frames.shape == (3, 128, 64, 3) and torch.isfinite(frames).all() and frames.std() > 0

    hjb = nodes["StableAnimatorHJBSettings"]()
    built = hjb.build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1, "fast", 4, window="tiled", preset="official")[0]
    assert built.settings.mode == "faithful" and built.settings.window == "all_frames"  # inference_op.py
    assert built.settings.tile_size_for(40, 16) == 40
    pack = hjb.build("Animation/glintr100_torch.pth", 1, 0, 0, 0.1, "memory_bounded", 4)[0]
    assert pack.settings.window == "tiled" and pack.settings.tile_size_for(40, 16) == 16


def test_nodes_ask_for_their_stage_memory(nodes, load_model, condition, bridge, monkeypatch):
    asked = []
    monkeypatch.setattr(bridge.ManagedModels, "load", lambda self, memory_required=0: asked.append(memory_required))
    model = load_model()
    cond, latent = condition(model, frames=3)
    out = nodes["StableAnimatorSampler"]().sample(model, cond, latent, seed=1, steps=1, guidance=3.0, tile_size=2,
                                                  tile_overlap=1)[0]
    nodes["StableAnimatorDecode"]().decode(model, out, 2)
    from stableanimator_core.sampling.memory import decode_memory_bytes, sampling_memory_bytes

    config = model.models.unet.config
    sampling = sampling_memory_bytes(config, 64, 128, 3, 2, True, model.dtype)
    assert sampling in asked
    assert asked[-1] == decode_memory_bytes(64, 128, 2)
