"""The HJB face optimisation as a hook of the Euler loop (:mod:`..sampling.loop`).

At every step where ``settings.is_refined(i)``, :class:`HJBStepHook` replaces the predicted clean latents by
their face-optimised version: a fresh Adam through :class:`.refine.FaceRefiner` at the step's learning rate
(``eta * (1 - i/steps)``), as the official ``EulerDiscreteSchedulerPro.step(refine_face=True)`` does. It keeps
the losses and the refined steps for the log.
"""

from __future__ import annotations

from typing import Callable, MutableMapping, Optional, Sequence

import numpy as np
import torch

from ..boxes import FaceBox
from ..sampling.loop import Step, StepHook
from ..sampling.parallel import WorkSplit
from .faces import reference_face_embedding
from .refine import FaceRefiner
from .settings import HJBSettings


class HJBStepHook(StepHook):
    def __init__(self, refiner: FaceRefiner, settings: HJBSettings):
        self.refiner = refiner
        self.settings = settings
        self.losses: list[float] = []
        self.refined_steps: list[int] = []

    @classmethod
    def build(cls, vae: torch.nn.Module, face_net: torch.nn.Module, reference: np.ndarray | torch.Tensor,
              reference_box: FaceBox, target_boxes: Sequence[Optional[FaceBox]], settings: HJBSettings,
              on_iteration: Optional[Callable[[int, float], None]] = None,
              recorder: Optional[MutableMapping[str, torch.Tensor]] = None,
              split: Optional[WorkSplit] = None,
              check_cancel: Optional[Callable[[], None]] = None) -> "HJBStepHook":
        """``reference``: the reference image at its original size (uint8 or 0..1 float ``[H, W, 3]``);
        ``check_cancel``: called between decoder layers inside every iteration, raises to stop (FaceRefiner)."""
        ref_embedding, ref_crop = reference_face_embedding(face_net, reference, reference_box)
        if recorder is not None:
            recorder["hjb_reference_face_crop_112"] = ref_crop.float().cpu()
            recorder["hjb_reference_face_embedding"] = ref_embedding.float().cpu()
        refiner = FaceRefiner(vae, face_net, ref_embedding, target_boxes, settings, on_iteration=on_iteration,
                              recorder=recorder, split=split, check_cancel=check_cancel)
        return cls(refiner, settings)

    def refine_x0(self, step: Step) -> torch.Tensor:
        return self.refine(step.x0, step.index, step.num_steps)

    def refine(self, x0: torch.Tensor, step_index: int, num_steps: int) -> torch.Tensor:
        """The clean estimate of step ``step_index`` of ``num_steps`` after HJB (unchanged at steps it skips);
        for samplers outside the pack's loop (the ComfyUI post-CFG hook)."""
        if not self.settings.is_refined(step_index):
            return x0
        with torch.enable_grad():
            refined, losses = self.refiner.refine(x0, self.settings.learning_rate(step_index, num_steps))
        self.losses.extend(losses)
        self.refined_steps.append(step_index)
        return refined
