"""SVD-xt's Euler sampler: Karras sigmas, v-prediction, continuous timesteps ``0.25*log(sigma)``.

This reproduces diffusers' ``EulerDiscreteScheduler`` as configured by SVD-xt's ``scheduler_config.json``
(``use_karras_sigmas``, ``timestep_type="continuous"``, ``prediction_type="v_prediction"``, "leading" spacing),
including where it computes in float64 (the Karras ramp) and where in float32 (everything after).
The stochastic ``s_churn`` branch is always off in StableAnimator, so no noise is drawn per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

SVD_XT_SCHEDULER = {"sigma_min": 0.002, "sigma_max": 700.0, "prediction_type": "v_prediction",
                    "timestep_type": "continuous", "use_karras_sigmas": True, "timestep_spacing": "leading"}


@dataclass(frozen=True)
class EulerSchedule:
    sigmas: torch.Tensor  # [steps + 1] float32, last is 0
    timesteps: torch.Tensor  # [steps] float32, what the UNet is given
    init_noise_sigma: torch.Tensor  # float32 scalar

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.shape[0])

    def to(self, device: torch.device | str) -> "EulerSchedule":
        return EulerSchedule(self.sigmas.to(device), self.timesteps.to(device), self.init_noise_sigma.to(device))


def karras_schedule(num_steps: int, config: Optional[Mapping[str, Any]] = None, rho: float = 7.0) -> EulerSchedule:
    """The schedule for ``num_steps`` steps under an SVD-style scheduler config (defaults: SVD-xt)."""
    cfg = dict(SVD_XT_SCHEDULER)
    if config:
        cfg.update({k: v for k, v in config.items() if v is not None})
    if num_steps < 1:
        raise ValueError(f"steps must be at least 1, got {num_steps}")
    if cfg.get("prediction_type") != "v_prediction" or not cfg.get("use_karras_sigmas", False):
        raise ValueError("StableAnimator needs SVD-xt's scheduler: v_prediction with Karras sigmas")
    ramp = np.linspace(0, 1, num_steps)
    min_inv = float(cfg["sigma_min"]) ** (1 / rho)
    max_inv = float(cfg["sigma_max"]) ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    timesteps = 0.25 * sigmas[:-1].log()
    # "leading" spacing: sqrt(sigma_max^2 + 1); other spacings would use sigma_max alone
    s_max = sigmas.max()
    init = (s_max**2 + 1) ** 0.5 if cfg.get("timestep_spacing", "leading") in ("leading", "trailing") else s_max
    return EulerSchedule(sigmas=sigmas, timesteps=timesteps, init_noise_sigma=init)


def scale_model_input(sample: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return sample / ((sigma**2 + 1) ** 0.5)


def predict_x0(model_output: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """v-prediction -> predicted clean latents (fp32, as the scheduler upcasts the sample)."""
    sample = sample.float()
    return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))


def euler_update(sample: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step from ``sigma`` to ``sigma_next`` given the (possibly refined) clean estimate."""
    sample = sample.float()
    derivative = (sample - x0) / sigma
    return sample + derivative * (sigma_next - sigma)
