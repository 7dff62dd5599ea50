"""The flat frame-batch denoiser (what the ComfyUI MODEL runs) against the pack's sampler, without ComfyUI.

The host loop below is SVD-xt's EDM v-prediction Euler as a host sampler computes it: scale the input, run the
denoiser on the flat [branches * frames] batch, turn v into the clean estimate, mix with CFG, step.
"""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.sampling.frame_batch import FrameBatchDenoiser, PoseFrames, WindowSettings
from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, latent_noise, run_sampler
from stableanimator_core.sampling.sampler import SamplerSettings
from stableanimator_core.sampling.scheduler import karras_schedule

SIZE = ConditioningSettings(width=64, height=128)


def _host_euler(denoiser, cond, settings: SamplerSettings, guidance: float, order=("cond", "uncond")):
    frames = cond.num_frames
    tile = min(settings.tile_size, frames)
    noise = latent_noise(settings.seed, SIZE.width, SIZE.height, frames, tile)[0]
    x = noise.repeat(frames // tile + 1, 1, 1, 1)[:frames]
    sigmas = karras_schedule(settings.steps).sigmas.double().float()
    x = x * (sigmas[0] ** 2 + 1) ** 0.5
    pose = PoseFrames(cond.pose_frames)
    tokens = torch.cat([cond.clip_embeds, cond.face_tokens], dim=1)
    per = {"cond": (tokens, cond.image_latents, 1.0), "uncond": (torch.zeros_like(tokens),
                                                                 torch.zeros_like(cond.image_latents), 0.0)}
    windows = WindowSettings(settings.tile_size, settings.tile_overlap)
    for i in range(settings.steps):
        s, s_next = sigmas[i], sigmas[i + 1]
        x_in = x / (s**2 + 1) ** 0.5
        parts = [per[o] for o in order]
        v = denoiser(torch.cat([x_in] * len(parts)), torch.full((frames * len(parts),), float(0.25 * s.log())),
                     torch.cat([p[0].expand(frames, -1, -1) for p in parts]),
                     torch.cat([p[1].expand(frames, -1, -1, -1) for p in parts]),
                     cond.added_time_ids.expand(frames * len(parts), -1),
                     pose, torch.cat([torch.full((frames,), p[2]) for p in parts]), windows, frames)
        x0 = dict(zip(order, (x / (s**2 + 1) - out * s / (s**2 + 1) ** 0.5 for out in v.chunk(len(parts)))))
        denoised = x0["uncond"] + (x0["cond"] - x0["uncond"]) * guidance
        x = x + (x - denoised) / s * (s_next - s)
    return x


@pytest.fixture(scope="module")
def cond(tiny_models, fixture_inputs):
    return build_conditioning(tiny_models, fixture_inputs.reference, fixture_inputs.arcface_embedding,
                              fixture_inputs.poses[:5], SIZE, seed=7)


@pytest.mark.parametrize("batch_branches", [True, False])
@pytest.mark.parametrize("order", [("cond", "uncond"), ("uncond", "cond")])
def test_host_cfg_over_the_flat_batch_reproduces_the_packs_sampler(tiny_models, cond, batch_branches, order):
    settings = SamplerSettings(steps=2, tile_size=3, tile_overlap=1, seed=7)  # 5 frames -> 2 windows
    expected = run_sampler(tiny_models, cond, settings)[0]
    denoiser = FrameBatchDenoiser(tiny_models.unet, tiny_models.pose_net, batch_branches=batch_branches)
    got = _host_euler(denoiser, cond, settings, guidance=3.0, order=order)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert denoiser.window_calls == 2 * 2  # steps x windows


def test_pose_features_are_computed_once_per_video(tiny_models, cond):
    calls = []
    denoiser = FrameBatchDenoiser(tiny_models.unet, tiny_models.pose_net)
    hook = tiny_models.pose_net.register_forward_hook(lambda *a: calls.append(1))
    try:
        _host_euler(denoiser, cond, SamplerSettings(steps=2, tile_size=3, tile_overlap=1), guidance=3.0)
        assert len(calls) == 1  # 5 frames fit one PoseNet chunk; reused for both steps and both windows
        denoiser.clear_cache()
        _host_euler(denoiser, cond, SamplerSettings(steps=1, tile_size=3, tile_overlap=1), guidance=3.0)
        assert len(calls) == 2
    finally:
        hook.remove()


def test_a_batch_that_is_not_whole_videos_is_refused(tiny_models, cond):
    denoiser = FrameBatchDenoiser(tiny_models.unet, tiny_models.pose_net)
    x = torch.zeros((4, 4, 16, 8))
    with pytest.raises(ValueError, match="not a whole number of 5-frame videos"):
        denoiser(x, torch.zeros(4), torch.zeros((4, 5, 32)), torch.zeros((4, 4, 16, 8)), torch.zeros((4, 3)),
                 PoseFrames(cond.pose_frames), torch.ones(4), WindowSettings(3, 1), 5)


def test_pose_flags_as_a_host_sequence_give_the_tensors_result(tiny_models, cond):
    """ComfyUI hands the flags as a tuple (a tensor there is moved to the GPU and read back every evaluation)."""
    denoiser = FrameBatchDenoiser(tiny_models.unet, tiny_models.pose_net)
    frames, g = cond.num_frames, torch.Generator().manual_seed(1)
    tokens = torch.cat([cond.clip_embeds, cond.face_tokens], dim=1)
    args = (torch.randn((2 * frames, 4, 16, 8), generator=g), torch.full((2 * frames,), 1.5),
            torch.cat([tokens.expand(frames, -1, -1), torch.zeros_like(tokens).expand(frames, -1, -1)]),
            torch.cat([cond.image_latents.expand(frames, -1, -1, -1)] * 2), cond.added_time_ids.expand(2 * frames, -1),
            PoseFrames(cond.pose_frames))
    flags = [1.0] * frames + [0.0] * frames
    with torch.no_grad():
        as_tensor = denoiser(*args, torch.tensor(flags), WindowSettings(3, 1), frames)
        as_tuple = denoiser(*args, tuple(flags), WindowSettings(3, 1), frames)
        no_pose = denoiser(*args, (0.0,) * (2 * frames), WindowSettings(3, 1), frames)
    assert torch.equal(as_tensor, as_tuple)
    assert not torch.equal(as_tuple, no_pose)  # the flags are read, not ignored
