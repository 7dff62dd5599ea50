"""The windowed, guided denoiser: one model evaluation of StableAnimator over a whole video.

:class:`WindowedDenoiser` turns noisy latents at a noise level into the guided model output over the official
frame windows (MimicMotion's tiling: frame 0 in every window, triangular blending weights), with the per-frame
guidance ramp of SVD (``min_guidance`` on the first frame to ``max_guidance`` on the last). The Euler loop
(:mod:`.loop`) calls it once per step; a ComfyUI model wrapper can call it once per model evaluation.

Numerically this is the inner loop of the official ``InferenceAnimationPipeline``. Differences, all exact:

* PoseNet runs once per frame for the whole video, not once per window and step (it has no temporal layers);
* the unconditional and conditional passes of a window share one UNet call (batch 2) unless ``batch_cfg`` is
  off; the unconditional half gets zero pose features, which is what "no pose" adds;
* the per-frame reference latents are broadcast, not materialised for every frame twice.

The conditioning's pose and identity terms (``Conditioning.pose`` / ``.identity``, see :mod:`.controls`) set,
per step, the PoseNet feature multiplier and the ID adapter's scale; where a term is off it is not computed
(PoseNet runs on the first step that uses pose).

The window loop itself is :func:`.windowed_unet.windowed_prediction`, shared with the ComfyUI model. Nothing in
:meth:`WindowedDenoiser.branch_outputs` waits for the device: the window index tensors and the per-frame weight
sums are built on the device once, in the constructor.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from ..pipeline.conditioning import Conditioning
from .parallel import COND, UNCOND, WorkSplit
from .scheduler import scale_model_input
from .windowed_unet import Branches, DeviceWindows, WindowCall, windowed_prediction, work_units
from .windows import WindowPlan

BOTH = (UNCOND, COND)  # branch ids index the encoder hidden states [uncond, cond]


def guidance_ramp(min_guidance: float, max_guidance: float, num_frames: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """SVD's per-frame guidance scale, ``[1, F, 1, 1, 1]`` float32."""
    return torch.linspace(min_guidance, max_guidance, num_frames, device=device).view(1, num_frames, 1, 1, 1)


class WindowedDenoiser:
    """Guided StableAnimator prediction over the official windows, for one video's conditioning.

    Call ``denoiser(latents, sigma, step=(i, steps))`` with noisy latents ``[1, F, 4, h, w]`` (unscaled,
    float32, on the denoiser's device), the noise level ``sigma`` (0-dim tensor) and the step it belongs to
    (which sets the pose/identity strengths, see :mod:`.controls`; a sampler that only knows sigma finds it with
    ``controls.step_of_sigma``; ``None`` uses the strengths with no step range). It returns the guided model
    output (v-prediction) ``[1, F, 4, h, w]`` float32, i.e. ``uncond + guidance * (cond - uncond)`` per frame.
    :func:`.scheduler.predict_x0` turns it into predicted clean latents.

    For samplers that do their own guidance, :meth:`branch_outputs` returns the window-blended outputs of the
    requested branches (``UNCOND``, ``COND``) stacked on dim 0, and :meth:`guide` combines them.
    ``timestep`` may be given where a schedule already holds it (bit-identical to ``0.25 * log(sigma)``).
    ``on_unet_call`` (optional) observes every window's UNet evaluation. ``split``: this process's share of the
    windows / CFG halves when several processes (``torchrun``) sample one video; every process gets the same
    blended outputs (see :mod:`.parallel`).
    """

    def __init__(self, unet: torch.nn.Module, pose_net: torch.nn.Module, cond: Conditioning, plan: WindowPlan,
                 guidance: torch.Tensor, device: torch.device | str = "cpu", batch_cfg: bool = True,
                 pose_cache_bytes: int = 2 << 30, on_unet_call: Optional[Callable[[WindowCall], None]] = None,
                 split: Optional[WorkSplit] = None):
        self.unet, self.pose_net, self.cond, self.plan = unet, pose_net, cond, plan
        self.split = split if split is not None and split.active else None
        self.units = work_units(plan.count, len(BOTH), self.split)
        self.device, self.batch_cfg, self.on_unet_call = torch.device(device), batch_cfg, on_unet_call
        self.dtype = next(unet.parameters()).dtype
        self.guidance = guidance.to(self.device, torch.float32)
        ref = cond.image_latents.to(self.device, self.dtype)  # [1, 4, h, w]
        # the unconditional branch sees zero reference latents, zero context and no pose (official)
        self.branches = Branches(cond.encoder_hidden_states().to(self.device, self.dtype),  # [2, T, D]
                                 cond.added_time_ids.to(self.device, self.dtype).repeat(2, 1),  # [2, 3]
                                 torch.cat([torch.zeros_like(ref), ref]), has_pose=(False, True))
        self.windows = DeviceWindows(plan.windows, self.device)
        h, w = cond.size_hw[0] // 8, cond.size_hw[1] // 8
        pose_bytes = plan.num_frames * pose_net.final_proj.out_channels * h * w * torch.finfo(self.dtype).bits // 8
        self._cache_pose = pose_bytes <= pose_cache_bytes
        self._pose_all: Optional[torch.Tensor] = None  # computed on the first step that uses pose

    def _all_pose_features(self, chunk: int = 16) -> torch.Tensor:
        return torch.cat([self.pose_net(self.cond.pose_pixels(slice(i, i + chunk)).to(self.device, self.dtype))
                          for i in range(0, self.cond.num_frames, chunk)])

    def pose_features(self, window: int) -> torch.Tensor:
        """PoseNet features ``[T, C, h, w]`` of one window's frames (cached for the video when they fit)."""
        if self._cache_pose:
            if self._pose_all is None:
                self._pose_all = self._all_pose_features()
            return self._pose_all[self.windows.index[window]]
        return self.pose_net(self.cond.pose_pixels(self.windows.windows[window]).to(self.device, self.dtype))

    def __call__(self, latents: torch.Tensor, sigma: torch.Tensor, timestep: Optional[torch.Tensor] = None,
                 step: Optional[tuple[int, int]] = None) -> torch.Tensor:
        return self.guide(self.branch_outputs(latents, sigma, BOTH, timestep, step))

    def term_scales(self, step: Optional[tuple[int, int]]) -> tuple[float, float]:
        """(pose, identity) strengths at ``step = (index, steps)``; 0 = the term is off there."""
        if step is None:
            return float(self.cond.pose.strength), float(self.cond.identity.strength)
        return self.cond.pose.scale(*step), self.cond.identity.scale(*step)

    def guide(self, outputs: torch.Tensor) -> torch.Tensor:
        """``[uncond, cond]`` blended outputs -> per-frame classifier-free guidance ``[1, F, 4, h, w]``."""
        return outputs[:1] + self.guidance * (outputs[1:] - outputs[:1])

    @torch.no_grad()
    def branch_outputs(self, latents: torch.Tensor, sigma: torch.Tensor, branches: Sequence[int] = BOTH,
                       timestep: Optional[torch.Tensor] = None,
                       step: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Window-blended UNet outputs ``[len(branches), F, 4, h, w]`` float32 of the requested branches."""
        t = 0.25 * sigma.log() if timestep is None else timestep
        pose_scale, id_scale = self.term_scales(step)
        return windowed_prediction(self.unet, scale_model_input(latents, sigma), t, self.branches, self.pose_features,
                                   self.windows, self.batch_cfg, self.on_unet_call, pose_scale, id_scale,
                                   self.split, wanted=branches)
