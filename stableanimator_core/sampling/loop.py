"""The Euler loop over a denoiser, with hooks instead of branches.

Per step ``i``: every hook's ``step_start``; the denoiser's guided output at ``sigma_i``; the predicted clean
latents x0; every hook's ``refine_x0`` in turn (HJB replaces x0 at its steps); the Euler update to
``sigma_{i+1}``; every hook's ``step_end``. Latents stay float32 whatever the UNet precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .scheduler import EulerSchedule, euler_update, predict_x0

Denoiser = Callable[..., torch.Tensor]  # (latents, sigma, timestep=, step=(i, steps)) -> guided model output


@dataclass
class Step:
    """One Euler step as the hooks see it; fields after ``latents`` are filled as the step proceeds."""

    index: int
    num_steps: int
    sigma: torch.Tensor
    sigma_next: torch.Tensor
    latents: torch.Tensor  # the step's input, float32 [1, F, 4, h, w]
    model_output: Optional[torch.Tensor] = None  # guided v-prediction
    x0: Optional[torch.Tensor] = None  # predicted clean latents (after refinement, once refined)
    next_latents: Optional[torch.Tensor] = None


class StepHook:
    """Base class of the loop's hooks; each method may raise to stop sampling (e.g. Cancel)."""

    def step_start(self, step: Step) -> None:
        pass

    def refine_x0(self, step: Step) -> torch.Tensor:
        """Return the clean-latent estimate to step with (``step.x0`` unchanged by default)."""
        return step.x0

    def step_end(self, step: Step) -> None:
        pass


def euler_loop(denoiser: Denoiser, latents: torch.Tensor, schedule: EulerSchedule,
               hooks: Sequence[StepHook] = ()) -> torch.Tensor:
    """Denoise ``latents`` (already scaled by the initial noise sigma) along ``schedule`` (on their device)."""
    sigmas, timesteps = schedule.sigmas, schedule.timesteps
    for i in range(schedule.num_steps):
        step = Step(i, schedule.num_steps, sigmas[i], sigmas[i + 1], latents)
        for hook in hooks:
            hook.step_start(step)
        step.model_output = denoiser(latents, step.sigma, timestep=timesteps[i], step=(i, schedule.num_steps))
        step.x0 = predict_x0(step.model_output, latents, step.sigma)
        for hook in hooks:
            step.x0 = hook.refine_x0(step)
        step.next_latents = euler_update(latents, step.x0, step.sigma, step.sigma_next)
        for hook in hooks:
            hook.step_end(step)
        latents = step.next_latents
    return latents
