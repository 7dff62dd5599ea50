"""Interrupts and out-of-memory inside the nodes: clear messages, models released, work stops promptly."""

from __future__ import annotations

import numpy as np
import pytest
import torch



def _face_masks(frames: int = 2) -> torch.Tensor:
    masks = torch.zeros(frames, 128, 64)
    masks[:, 10:40, 10:40] = 1
    return masks


def _spy_releases(monkeypatch, bridge):
    released = []
    original = bridge.ManagedModels.release

    def release(self):
        released.append(self)
        original(self)

    monkeypatch.setattr(bridge.ManagedModels, "release", release)
    return released


def test_interrupt_stops_sampling_after_one_unet_call(nodes, bridge, monkeypatch, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=5)
    calls = []
    hook = model.models.unet.register_forward_hook(lambda *a: calls.append(1))
    released = _spy_releases(monkeypatch, bridge)
    try:
        bridge.request_interrupt()
        with pytest.raises(bridge.Interrupted):
            nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 10, 3.0, 3, 1)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert model.sampling in released


def test_interrupt_during_hjb_stops_within_one_iteration(nodes, bridge, monkeypatch, load_model, condition):
    model = load_model()
    cond, latent = condition(model, frames=2)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 5, 0, 3, 0.1, "faithful", 4)[0]
    masks = _face_masks()
    face_calls = []

    def on_face_forward(*_):
        face_calls.append(1)
        if len(face_calls) == 2:  # the first call embeds the reference; the second is HJB iteration 0
            bridge.request_interrupt()

    hook = hjb.face_net.register_forward_hook(on_face_forward)
    try:
        with pytest.raises(bridge.Interrupted):
            nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 4, 3.0, 16, 4, hjb=hjb, face_masks=masks)
    finally:
        hook.remove()
    assert len(face_calls) == 2  # stopped after the first of 5 x 4 iterations
    assert not any(p.grad is not None for p in hjb.face_net.parameters())


def test_out_of_memory_during_sampling_names_the_knobs_and_releases(nodes, bridge, monkeypatch, load_model, condition, errors):
    model = load_model()
    cond, latent = condition(model, frames=2)
    released = _spy_releases(monkeypatch, bridge)

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model.models.unet, "forward", oom)
    with pytest.raises(errors.OutOfMemoryError) as err:
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 2, 3.0, 16, 4)
    msg = str(err.value)
    assert type(err.value).__name__ == "OutOfMemoryError" and "Out of GPU memory during sampling" in msg
    assert "tile_size" in msg and "memory_bounded" in msg and "ComfyUI keeps running" in msg
    assert model.sampling in released


def test_out_of_memory_during_decode_names_decode_chunk_size(nodes, bridge, monkeypatch, load_model, errors):
    model = load_model()
    released = _spy_releases(monkeypatch, bridge)

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model.models.vae, "decode", oom)
    with pytest.raises(errors.OutOfMemoryError, match="during decoding.*decode_chunk_size"):
        nodes["StableAnimatorDecode"]().decode(model, {"samples": torch.zeros(2, 4, 16, 8)}, 4)
    assert model.vae in released


def test_decode_rejects_a_foreign_latent(nodes, load_model, errors):
    model = load_model()
    with pytest.raises(errors.InputError, match=r"latent \[frames, 4, h, w\]"):
        nodes["StableAnimatorDecode"]().decode(model, {"samples": torch.zeros(1, 16, 2, 8, 8)}, 4)


def test_out_of_memory_during_hjb_names_the_hjb_modes(nodes, bridge, monkeypatch, load_model, condition, errors):
    model = load_model()
    cond, latent = condition(model, frames=2)
    hjb = nodes["StableAnimatorHJBSettings"]().build("Animation/glintr100_torch.pth", 2, 0, 1, 0.1, "faithful", 4)[0]
    masks = _face_masks()
    released = _spy_releases(monkeypatch, bridge)
    calls = []

    def face_oom(module, args):
        calls.append(1)
        if len(calls) > 1:  # the reference embedding works; the first HJB iteration runs out of memory
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    hook = hjb.face_net.register_forward_pre_hook(face_oom)
    try:
        with pytest.raises(errors.OutOfMemoryError, match="during sampling with HJB.*'memory_bounded' / 'fast'"):
            nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 2, 3.0, 16, 4, hjb=hjb, face_masks=masks)
    finally:
        hook.remove()
    assert hjb.face_net_group in released and model.sampling in released and model.vae in released


def test_driving_frames_of_another_size_than_the_reference(nodes, payloads, load_model):
    model = load_model()
    ref = torch.rand(1, 150, 110, 3)
    clip = nodes["StableAnimatorCLIPEncode"]().encode(model, ref)[0]
    face = payloads.FaceIdentity(np.zeros(512, np.float32) + 0.1, (10, 50, 10, 50), (150, 110))
    poses = torch.rand(3, 72, 200, 3)  # wide skeleton frames for a tall reference: resized, not an error
    cond, latent = nodes["StableAnimatorConditioning"]().condition(model, ref, clip, face, poses, 64, 128, 7, 127,
                                                                    0.02, 1)
    assert cond.cond.pose_frames.shape == (3, 3, 128, 64)
    assert latent["samples"].shape == (3, 4, 16, 8)
