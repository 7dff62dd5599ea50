"""The denoising loop: windows over the frames, classifier-free guidance, Euler steps, optional HJB.

Numerically this is the official ``InferenceAnimationPipeline`` / ``InferenceAnimationProPipeline`` loop.
What it does differently, all exact (no value changes beyond float rounding):

* PoseNet runs once per frame for the whole video, not once per window and step (it has no temporal layers);
* the unconditional and conditional passes of a window share one UNet call (batch 2); the unconditional half
  gets zero pose features, which is what "no pose" adds;
* the per-frame reference latents are broadcast, not materialised for every frame twice.

The conditioning's pose and identity terms (``Conditioning.pose`` / ``.identity``, see ``controls``) set, per
step, the PoseNet feature multiplier and the ID adapter's scale; where a term is off it is not computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import torch

from ..pipeline.conditioning import Conditioning
from .parallel import COND, UNCOND, PredictionBlend, WorkSplit
from .scheduler import EulerSchedule, euler_update, karras_schedule, predict_x0, scale_model_input
from .windows import effective_tile_size, window_indices, window_weights

log = logging.getLogger(__name__)

LATENT_CHANNELS = 4
VAE_SCALE = 8


@dataclass
class SamplerSettings:
    steps: int = 25
    min_guidance: float = 3.0
    max_guidance: float = 3.0
    tile_size: int = 16
    tile_overlap: int = 4
    seed: int = 23123134
    batch_cfg: bool = True  # one batch-2 UNet call per window instead of two batch-1 calls
    pose_cache_bytes: int = 2 << 30  # PoseNet features of all frames kept on device up to this size

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.min_guidance <= 1.0 or self.max_guidance <= 1.0:
            # official code: guidance <= 1 crashes (empty batch) or breaks the step; CFG is always on
            raise ValueError("guidance must be greater than 1.0 (StableAnimator always uses classifier-free guidance)")
        if self.tile_size < 1 or self.tile_overlap < 0:
            raise ValueError("tile_size must be >= 1 and tile_overlap >= 0")


class Refiner(Protocol):
    """The HJB face optimisation as the sampler sees it (implemented in ``stableanimator_core.hjb``)."""

    def is_refined(self, step_index: int) -> bool: ...

    def refine_x0(self, x0: torch.Tensor, step_index: int, num_steps: int) -> torch.Tensor: ...


@dataclass
class SamplerCallbacks:
    """Hooks for progress, previews and interruption; each may raise to stop sampling."""

    on_unet_call: Optional[Callable[[int, int], None]] = None  # (calls done, calls total)
    on_step: Optional[Callable[[int, int, torch.Tensor], None]] = None  # (step, steps, predicted x0 [1,F,4,h,w])


@dataclass
class SamplerModels:
    unet: torch.nn.Module
    pose_net: torch.nn.Module


def initial_noise(generator: torch.Generator, tile: int, h: int, w: int) -> torch.Tensor:
    """The official initial noise: drawn for ``tile`` frames only (repeated over the video later)."""
    return torch.randn((1, tile, LATENT_CHANNELS, h, w), generator=generator, dtype=torch.float32)


def _pose_features(pose_net: torch.nn.Module, frames: torch.Tensor, device, dtype, chunk: int = 16) -> torch.Tensor:
    outs = [pose_net(frames[i : i + chunk].to(device, dtype)) for i in range(0, frames.shape[0], chunk)]
    return torch.cat(outs)


@torch.no_grad()
def sample(
    models: SamplerModels,
    cond: Conditioning,
    settings: SamplerSettings,
    noise: torch.Tensor,
    device: torch.device | str = "cpu",
    refiner: Optional[Refiner] = None,
    callbacks: SamplerCallbacks = SamplerCallbacks(),
    recorder: Optional[dict] = None,
    schedule_config: Optional[dict] = None,
    split: Optional[WorkSplit] = None,
) -> torch.Tensor:
    """Denoise and return latents ``[1, F, 4, h, w]`` (float32, on ``device``).

    ``noise`` is the initial noise for one window ``[1, T, 4, h, w]`` (T = effective tile size), as drawn by
    :func:`initial_noise`; it repeats with period T over the frames, as in the official code.
    ``recorder`` (optional dict) receives the intermediates the parity fixture records.
    ``split``: this process's share of the windows / CFG halves when several processes (``torchrun``) sample
    one video; every process returns the same latents (see :mod:`parallel`).
    """
    settings.validate()
    unet, pose_net = models.unet, models.pose_net
    dtype = next(unet.parameters()).dtype
    num_frames = cond.num_frames
    tile = effective_tile_size(num_frames, settings.tile_size)
    windows = window_indices(num_frames, tile, min(settings.tile_overlap, tile - 1))
    height, width = cond.size_hw
    h, w = height // VAE_SCALE, width // VAE_SCALE
    if noise.shape != (1, tile, LATENT_CHANNELS, h, w):
        raise ValueError(f"initial noise must have shape {(1, tile, LATENT_CHANNELS, h, w)}, got {tuple(noise.shape)}")

    schedule: EulerSchedule = karras_schedule(settings.steps, schedule_config)
    sigmas = schedule.sigmas.to(device)
    timesteps = schedule.timesteps.to(device)
    latents = noise.to(device) * schedule.init_noise_sigma.to(device)
    latents = latents.repeat(1, num_frames // tile + 1, 1, 1, 1)[:, :num_frames]

    ehs = cond.encoder_hidden_states().to(device, dtype)  # [2, T, D]
    time_ids = cond.added_time_ids.to(device, dtype).repeat(2, 1)  # [2, 3]
    ref_latents = cond.image_latents.to(device, dtype)  # [1, 4, h, w]
    guidance = torch.linspace(settings.min_guidance, settings.max_guidance, num_frames, device=device)
    guidance = guidance.to(latents.dtype).view(1, num_frames, 1, 1, 1)
    weights = window_weights(tile, device=device)
    if split is not None:
        log.info("%s", split.describe(len(windows)))

    pose_bytes = num_frames * pose_net.final_proj.out_channels * h * w * torch.finfo(dtype).bits // 8
    pose_cache: dict[str, torch.Tensor] = {}

    def pose_for(idx: list[int]) -> torch.Tensor:
        # computed on the first step that uses pose: a video whose pose term is off never runs PoseNet
        if pose_bytes <= settings.pose_cache_bytes:
            if "all" not in pose_cache:
                pose_cache["all"] = _pose_features(pose_net, cond.pose_frames, device, dtype)
            return pose_cache["all"][idx]
        return pose_net(cond.pose_frames[idx].to(device, dtype))

    if recorder is not None:
        recorder["posenet_in_window0"] = cond.pose_frames[windows[0]].clone()
        recorder["posenet_out_window0"] = pose_for(windows[0]).float().cpu()

    units = split.units(len(windows)) if split is not None else [(wi, (UNCOND, COND)) for wi in range(len(windows))]
    calls_total = settings.steps * len(units)
    calls_done = 0
    for i in range(settings.steps):
        sigma, t = sigmas[i], timesteps[i]
        # strength and step range of the pose and identity terms (cond.pose / cond.identity); 0 = not computed
        pose_scale = cond.pose.scale(i, settings.steps)
        id_scale = cond.identity.scale(i, settings.steps)
        scaled = scale_model_input(latents, sigma).to(dtype)  # [1, F, 4, h, w]
        blend = PredictionBlend(windows, weights, (LATENT_CHANNELS, h, w), device, split)  # float32
        for wi, branches in units:
            idx = windows[wi]
            n = len(idx)
            noisy = scaled[:, idx]
            # the unconditional branch sees zero reference latents, zero context and no pose (official)
            x_u = torch.cat([noisy, torch.zeros_like(noisy)], dim=2)
            x_c = torch.cat([noisy, ref_latents[:, None].expand(1, n, -1, -1, -1)], dim=2)
            pose = pose_for(idx) if pose_scale and COND in branches else None
            if pose is not None and pose_scale != 1.0:
                pose = pose * pose_scale
            out_u = out_c = None
            if settings.batch_cfg and len(branches) == 2:
                batch_pose = None if pose is None else torch.stack([torch.zeros_like(pose), pose])
                out = unet(torch.cat([x_u, x_c]), t, ehs, time_ids, batch_pose, id_scale=id_scale)
                out_u, out_c = out[:1], out[1:]
            else:
                if UNCOND in branches:
                    out_u = unet(x_u, t, ehs[:1], time_ids[:1], None, id_scale=id_scale)
                if COND in branches:
                    out_c = unet(x_c, t, ehs[1:], time_ids[1:], pose, id_scale=id_scale)
            if recorder is not None and i == 0 and wi == 0 and len(branches) == 2:
                _record_first_calls(recorder, x_u, x_c, t, ehs, time_ids, pose, out_u, out_c)
            for branch, out in ((UNCOND, out_u), (COND, out_c)):
                if out is not None:
                    blend.add(wi, branch, out[0])
            calls_done += 1
            if callbacks.on_unet_call is not None:
                callbacks.on_unet_call(calls_done, calls_total)
        pred = blend.result()
        model_output = pred[:1] + guidance * (pred[1:] - pred[:1])

        x0 = predict_x0(model_output, latents, sigma)
        if refiner is not None and refiner.is_refined(i):
            with torch.enable_grad():
                x0 = refiner.refine_x0(x0, i, settings.steps)
        new_latents = euler_update(latents, x0, sigma, sigmas[i + 1])  # latents stay float32
        if recorder is not None:
            recorder[f"step{i}_sample_in"] = latents.float().cpu()
            recorder[f"step{i}_sigma"] = sigma.reshape(1).float().cpu()
            recorder[f"step{i}_model_output_guided"] = model_output.float().cpu()
            recorder[f"step{i}_prev_sample"] = new_latents.cpu()
            recorder[f"latents_after_step{i}"] = new_latents.cpu()
        latents = new_latents
        if callbacks.on_step is not None:
            callbacks.on_step(i, settings.steps, x0)
    return latents


def _record_first_calls(rec: dict, x_u, x_c, t, ehs, time_ids, pose, out_u, out_c) -> None:
    """The fixture's names for the two UNet calls of the first window of the first step."""
    for prefix, x, e, ids, p, out in (("unet_call0_uncond_", x_u, ehs[:1], time_ids[:1], None, out_u),
                                      ("unet_call1_cond_", x_c, ehs[1:], time_ids[1:], pose, out_c)):
        rec[prefix + "sample"] = x.float().cpu()
        rec[prefix + "timestep"] = t.reshape(1).float().cpu()
        rec[prefix + "encoder_hidden_states"] = e.float().cpu()
        rec[prefix + "added_time_ids"] = ids.float().cpu()
        if p is not None:
            rec[prefix + "pose_latents"] = p.float().cpu()
        rec[prefix + "out"] = out.float().cpu()
