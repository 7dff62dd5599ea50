"""Sampling a video: settings, the window plan and progress total, and :func:`sample`, which puts the
:class:`.denoiser.WindowedDenoiser` under the :func:`.loop.euler_loop` with its hooks (HJB, parity recording,
progress and previews).

Numerically this is the official ``InferenceAnimationPipeline`` / ``InferenceAnimationProPipeline`` loop (see
:mod:`.denoiser` for what is computed differently, all exact). The initial noise is drawn for one window and
repeats with that period over the frames, as in the official code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from ..pipeline.conditioning import Conditioning
from ..settings import SamplerSettings
from .denoiser import COND, UNCOND, WindowedDenoiser, guidance_ramp
from .loop import Step, StepHook, euler_loop
from .parallel import WorkSplit
from .scheduler import karras_schedule
from .windowed_unet import WindowCall
from .windows import WindowPlan, plan_windows

log = logging.getLogger(__name__)

LATENT_CHANNELS = 4
VAE_SCALE = 8


@dataclass(frozen=True)
class SamplingPlan:
    """What a run will do, known before it starts: its windows and how many units of progress it reports."""

    steps: int
    windows: WindowPlan

    @property
    def unet_calls(self) -> int:
        return self.steps * self.windows.count

    def progress_total(self, hjb: Optional[Any] = None) -> int:
        """UNet window evaluations plus, with HJB settings (``hjb.HJBSettings``), its optimisation iterations."""
        return self.unet_calls + (0 if hjb is None else hjb.total_iterations(self.steps))


def plan_sampling(num_frames: int, settings: SamplerSettings) -> SamplingPlan:
    """The tiling of ``settings`` normalised for ``num_frames`` frames (the one place that does)."""
    return SamplingPlan(settings.steps, plan_windows(num_frames, settings.tile_size, settings.tile_overlap))


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


class _Previews(StepHook):
    def __init__(self, on_step: Callable[[int, int, torch.Tensor], None]):
        self.on_step = on_step

    def step_end(self, step: Step) -> None:
        self.on_step(step.index, step.num_steps, step.x0)


class ParityRecorder(StepHook):
    """Writes the intermediates the parity fixture records, under the fixture's key names, into ``record``."""

    def __init__(self, record: dict):
        self.record = record

    def attach(self, denoiser: WindowedDenoiser) -> None:
        idx = list(denoiser.plan.windows[0])
        self.record["posenet_in_window0"] = denoiser.cond.pose_pixels(idx)
        self.record["posenet_out_window0"] = denoiser.pose_features(0).float().cpu()
        inner = denoiser.on_unet_call
        first = [True]

        def observe(call: WindowCall) -> None:
            if first[0] and len(call.branches) == 2:  # a split process may not compute both halves
                first[0] = False
                self._first_calls(call)
            if inner is not None:
                inner(call)

        denoiser.on_unet_call = observe

    def _first_calls(self, call: WindowCall) -> None:
        """The two UNet calls of the first window of the first step."""
        for branch, prefix in ((UNCOND, "unet_call0_uncond_"), (COND, "unet_call1_cond_")):
            k = call.row(branch)
            self.record[prefix + "sample"] = call.inputs[k : k + 1].float().cpu()
            self.record[prefix + "timestep"] = call.timestep[k].reshape(1).float().cpu()
            self.record[prefix + "encoder_hidden_states"] = call.encoder_hidden_states[k : k + 1].float().cpu()
            self.record[prefix + "added_time_ids"] = call.added_time_ids[k : k + 1].float().cpu()
            if branch == COND and call.pose is not None:
                self.record[prefix + "pose_latents"] = call.pose.float().cpu()
            self.record[prefix + "out"] = call.outputs[k : k + 1].float().cpu()

    def step_end(self, step: Step) -> None:
        i = step.index
        self.record[f"step{i}_sample_in"] = step.latents.float().cpu()
        self.record[f"step{i}_sigma"] = step.sigma.reshape(1).float().cpu()
        self.record[f"step{i}_model_output_guided"] = step.model_output.float().cpu()
        self.record[f"step{i}_prev_sample"] = step.next_latents.cpu()
        self.record[f"latents_after_step{i}"] = step.next_latents.cpu()


def _progress_observer(on_unet_call: Callable[[int, int], None], total: int) -> Callable[[WindowCall], None]:
    done = [0]

    def observe(call: WindowCall) -> None:
        done[0] += 1
        on_unet_call(done[0], total)

    return observe


@torch.no_grad()
def sample(
    models: SamplerModels,
    cond: Conditioning,
    settings: SamplerSettings,
    noise: torch.Tensor,
    device: torch.device | str = "cpu",
    refiner: Optional[StepHook] = None,
    callbacks: SamplerCallbacks = SamplerCallbacks(),
    recorder: Optional[dict] = None,
    schedule_config: Optional[dict] = None,
    split: Optional[WorkSplit] = None,
    hooks: Sequence[StepHook] = (),
) -> torch.Tensor:
    """Denoise and return latents ``[1, F, 4, h, w]`` (float32, on ``device``).

    ``noise`` is the initial noise for one window ``[1, T, 4, h, w]`` (T = effective tile size), as drawn by
    :func:`initial_noise`. ``refiner``: the HJB hook (``hjb.HJBStepHook``) or None; ``hooks``: further step
    hooks, run after it. ``recorder`` (optional dict) receives the intermediates the parity fixture records.
    ``split``: this process's share of the windows / CFG halves when several processes (``torchrun``) sample
    one video; every process returns the same latents (see :mod:`.parallel`).
    """
    plan = plan_sampling(cond.num_frames, settings)
    tile, num_frames = plan.windows.tile_size, cond.num_frames
    h, w = cond.size_hw[0] // VAE_SCALE, cond.size_hw[1] // VAE_SCALE
    if noise.shape != (1, tile, LATENT_CHANNELS, h, w):
        raise ValueError(f"initial noise must have shape {(1, tile, LATENT_CHANNELS, h, w)}, got {tuple(noise.shape)}")
    schedule = karras_schedule(settings.steps, schedule_config).to(device)
    latents = noise.to(device) * schedule.init_noise_sigma
    latents = latents.repeat(1, num_frames // tile + 1, 1, 1, 1)[:, :num_frames]

    denoiser = WindowedDenoiser(models.unet, models.pose_net, cond, plan.windows,
                                guidance_ramp(settings.min_guidance, settings.max_guidance, num_frames, device),
                                device, settings.batch_cfg, settings.pose_cache_bytes, split=split)
    if split is not None:
        log.info("%s", split.describe(plan.windows.count))
    if callbacks.on_unet_call is not None:  # this process's share of the calls
        denoiser.on_unet_call = _progress_observer(callbacks.on_unet_call, settings.steps * len(denoiser.units))
    all_hooks = [h for h in (refiner, *hooks) if h is not None]
    if recorder is not None:
        parity = ParityRecorder(recorder)
        parity.attach(denoiser)
        all_hooks.append(parity)
    if callbacks.on_step is not None:
        all_hooks.append(_Previews(callbacks.on_step))
    return euler_loop(denoiser, latents, schedule, all_hooks)
