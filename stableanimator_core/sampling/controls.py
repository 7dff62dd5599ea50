"""Strength and step range of the two conditioning terms users tune: identity (the ID adapter) and pose (PoseNet).

Each term has a ``strength`` and a range ``[start_percent, end_percent)`` of the denoising steps: step ``i`` of
``N`` (0-based) runs the term when ``start_percent <= i / N < end_percent``. Outside the range, or at strength
0, the term is off and nothing is computed for it (no PoseNet call, no ID attention). The defaults (1.0 over
all steps) are the official behaviour.

* identity strength is the official ID processor's ``scale``: ``to_out(A + scale * I')`` in every spatial
  cross-attention; 0 leaves the CLIP image attention alone;
* pose strength multiplies PoseNet's features before they are added to the UNet input.

They travel with the conditioning, so any sampler that drives the denoiser (the pack's Euler loop, or
ComfyUI's KSampler through the native model, which knows the step from ``sample_sigmas``) applies them alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Sequence

from ..errors import InputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TermWindow:
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0

    def validate(self, name: str) -> None:
        """Raises ``InputError`` (a ``ValueError``) naming the term; every value must be a finite number."""
        values = (self.strength, self.start_percent, self.end_percent)
        if any(isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) for v in values):
            raise InputError(f"{name} strength and start/end percent must be finite numbers, got "
                             f"{self.strength} / {self.start_percent} / {self.end_percent}")
        if not self.strength >= 0:
            raise InputError(f"{name} strength must be 0 or more, got {self.strength}")
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise InputError(f"{name} start/end percent must satisfy 0 <= start <= end <= 1, got "
                             f"{self.start_percent} / {self.end_percent}")

    def active(self, step: int, steps: int) -> bool:
        return self.strength != 0 and self.start_percent <= step / steps < self.end_percent

    def scale(self, step: int, steps: int) -> float:
        """The term's weight at ``step`` of ``steps``: its strength inside the range, 0 outside."""
        return float(self.strength) if self.active(step, steps) else 0.0

    def active_steps(self, steps: int) -> list[int]:
        return [i for i in range(steps) if self.active(i, steps)]

    @property
    def is_official(self) -> bool:
        return self.strength == 1.0 and self.start_percent == 0.0 and self.end_percent == 1.0


OFFICIAL = TermWindow()


def step_of_sigma(sample_sigmas: Sequence[float] | torch.Tensor, sigma: float | torch.Tensor) -> tuple[int, int]:
    """(step index, number of steps) of ``sigma`` in a sampler's sigma list (``N + 1`` values ending in 0),
    for samplers that only pass the current sigma (ComfyUI's ``transformer_options["sample_sigmas"]``)."""
    import torch  # here, so that the settings (and the CLI's --help) load without torch

    sigmas = torch.as_tensor(sample_sigmas, dtype=torch.float64).flatten()
    s = torch.as_tensor(sigma, dtype=torch.float64).flatten()[0]
    steps = max(1, sigmas.numel() - 1)
    return min(int(torch.argmin((sigmas - s).abs())), steps - 1), steps
