"""StableAnimator for core samplers: a core MODEL, core CONDITIONING + LATENT, and HJB as a sampler hook.

The node classes import nothing from ComfyUI at module level (so the workflow generator and the tests can read their
definitions); ``comfy_model`` is imported when a node runs inside ComfyUI.
"""

from __future__ import annotations

import logging

import torch

from ..stableanimator_core.errors import InputError
from ..stableanimator_core.hjb.sampler_hook import HJBStepHook
from ..stableanimator_core.sampling.frame_batch import PoseFrames, WindowSettings
from ..stableanimator_core.sampling.windows import effective_tile_size
from . import comfy_bridge as bridge
from . import core_encoders
from .generation_nodes import StableAnimatorConditioning, StableAnimatorSampler
from .payloads import HJB, MODEL
from .gpu_session import SAMPLER_ADVICE

log = logging.getLogger("StableAnimator")
CATEGORY = "StableAnimator/core sampling"
# The official draw order spends the seed's first numbers on the reference's noise [1, 3, H, W]: as many as 48
# latent frames [1, 4, H/8, W/8]. ComfyUI draws one latent frame per batch index, so batch indices 48.. replay the
# official initial noise (one window's noise, repeated with the window's period).
REFERENCE_NOISE_FRAMES = 48


def _comfy_model():
    if not bridge.IN_COMFYUI:
        raise InputError("this node needs ComfyUI (it builds a core MODEL / CONDITIONING)")
    from . import comfy_model

    return comfy_model


def official_batch_index(num_frames: int, tile_size: int) -> list[int]:
    """LATENT ``batch_index`` that makes ComfyUI's noise equal the official initial noise for ``seed``."""
    tile = effective_tile_size(num_frames, tile_size)
    return [REFERENCE_NOISE_FRAMES + f % tile for f in range(num_frames)]


class StableAnimatorModelForKSampler:
    DESCRIPTION = ("The StableAnimator UNet with PoseNet and the ID adapter as a core MODEL, sampled like SVD-xt "
                   "(v-prediction, sigma 0.002-700), for KSampler / SamplerCustom and model patches (EasyCache, "
                   "TorchCompileModel, VideoLinearCFGGuidance, ...). The same modules as the pack's own sampler, not "
                   "a copy. Long videos: the official frame windows run inside every model evaluation.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("A core MODEL; give it the positive/negative/latent of StableAnimator Conditioning (KSampler).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stableanimator": (MODEL, {"tooltip": "From StableAnimator Model Loader."}),
            "batch_cfg": ("BOOLEAN", {"default": True,
                                      "tooltip": "When ComfyUI batches positive and negative, run them as one UNet "
                                                 "call per window (same result); off: one call per conditioning."}),
        }}

    def build(self, stableanimator, batch_cfg=True):
        cm = _comfy_model()
        return (cm.make_model_patcher(stableanimator.models.unet, stableanimator.models.pose_net, batch_cfg),)


class StableAnimatorKSamplerConditioning:
    DESCRIPTION = ("StableAnimator Conditioning for core samplers: positive (reference latent, CLIP embedding + face "
                   "tokens, skeleton frames, SVD micro-conditioning), negative (the official unconditional branch: "
                   "zero reference, zero tokens, no pose) and the empty LATENT. With official_noise, KSampler's seed "
                   "gives the official code's initial noise, so euler + karras reproduces StableAnimator Sampler.")
    CATEGORY = CATEGORY
    FUNCTION = "condition"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = ("For KSampler's positive input.", "For KSampler's negative input.",
                       "Empty latent [frames, 4, height/8, width/8] for KSampler.")

    @classmethod
    def INPUT_TYPES(cls):
        base = StableAnimatorConditioning.INPUT_TYPES()
        sampler = StableAnimatorSampler.INPUT_TYPES()["required"]
        widgets = {k: v for k, v in base.get("optional", {}).items() if k != "vae"}
        return {"required": {
            **base["required"],
            **widgets,
            "tile_size": sampler["tile_size"],
            "tile_overlap": sampler["tile_overlap"],
            "official_noise": ("BOOLEAN", {"default": True,
                                           "tooltip": "KSampler's seed draws the official initial noise (one "
                                                      "window's noise repeated, after the reference's draw); give it "
                                                      "the same seed as noise_seed to reproduce the official run. "
                                                      "Off: ComfyUI's usual independent noise per frame."}),
        }, "optional": {"vae": base["optional"]["vae"]}}

    def condition(self, tile_size, tile_overlap, official_noise=True, **conditioning):
        cm = _comfy_model()
        animation, latent = StableAnimatorConditioning().condition(**conditioning)
        cond = animation.cond
        frames = cond.num_frames
        tile = effective_tile_size(frames, tile_size)
        windows = WindowSettings(tile, min(tile_overlap, tile - 1))
        windows.windows(frames)  # refuses impossible settings now, not in the sampler
        pose = PoseFrames(cond.pose_frames)
        tokens = torch.cat([cond.clip_embeds, cond.face_tokens.to(cond.clip_embeds.dtype)], dim=1)
        extras = {"animation": animation}
        terms = (cond.pose, cond.identity)  # pose and identity strength / step range, applied per step
        positive = cm.NativeConditioning(cond.image_latents, cond.added_time_ids, pose, True, windows, terms, extras)
        negative = cm.NativeConditioning(torch.zeros_like(cond.image_latents), cond.added_time_ids, pose, False,
                                         windows, terms, extras)
        latent = dict(latent)
        if official_noise:
            latent["batch_index"] = official_batch_index(frames, tile)
        return ([[tokens, {cm.COND_KEY: positive}]], [[torch.zeros_like(tokens), {cm.COND_KEY: negative}]], latent)


class StableAnimatorHJBHook:
    DESCRIPTION = ("Adds StableAnimator's HJB face optimisation to a MODEL as a sampler hook: after guidance, the "
                   "predicted clean latents of each refined step are optimised towards the reference identity. With "
                   "euler this is the pack's HJB exactly. Other samplers: every model evaluation at a schedule sigma "
                   "is refined (heun and dpm_2 evaluate twice per step, so those steps are refined twice; ancestral "
                   "and multistep samplers refine once per step but their update differs from the official Euler).")
    CATEGORY = CATEGORY
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The MODEL with the HJB hook.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "From StableAnimator Model (KSampler)."}),
            "stableanimator": (MODEL, {"tooltip": "From StableAnimator Model Loader (its VAE decodes the faces)."}),
            "positive": ("CONDITIONING", {"tooltip": "The positive output of StableAnimator Conditioning (KSampler) "
                                                     "(it carries the reference photo and face box)."}),
            "hjb": (HJB, {"tooltip": "From StableAnimator HJB Face Optimisation."}),
            "face_masks": ("MASK", {"tooltip": "Per-frame face masks (e.g. DWPose's face_masks)."}),
        }}

    def patch(self, model, stableanimator, positive, hjb, face_masks):
        cm = _comfy_model()
        native = positive[0][1].get(cm.COND_KEY) if positive else None
        if native is None or "animation" not in native.extras:
            raise InputError("connect the positive output of StableAnimator Conditioning (KSampler)")
        animation = native.extras["animation"]
        target_boxes, ref_box = StableAnimatorSampler._hjb_targets(animation, face_masks)
        vae, vae_group = core_encoders.vae_for(stableanimator, hjb.core_vae, "The HJB hook (it decodes the faces)")
        groups = [vae_group, hjb.face_net_group]
        state = {"refiner": None}

        def refine(x0: torch.Tensor, step: int, steps: int) -> torch.Tensor:
            if not hjb.settings.is_refined(step):
                return x0
            for g in groups:
                g.load()
            if state["refiner"] is None:
                state["refiner"] = HJBStepHook.build(vae, hjb.face_net, animation.reference,
                                                     ref_box, target_boxes, hjb.settings,
                                                     on_iteration=lambda it, loss: bridge.check_interrupt(),
                                                     check_cancel=bridge.check_interrupt)
            try:
                return state["refiner"].refine(x0, step, steps)
            except bridge.oom_types() as exc:
                raise InputError(f"Out of GPU memory in the HJB hook. Lower memory use with: {SAMPLER_ADVICE}") \
                    from exc

        patched = cm.add_post_cfg_hook(model, refine)
        extra = [g.patcher for g in groups if g.patcher is not None]
        if extra and hasattr(patched, "set_additional_models"):
            patched.set_additional_models("stableanimator_hjb", extra)  # loaded with the UNet for sampling
        return (patched,)


NODE_CLASS_MAPPINGS = {
    "StableAnimatorModelForKSampler": StableAnimatorModelForKSampler,
    "StableAnimatorKSamplerConditioning": StableAnimatorKSamplerConditioning,
    "StableAnimatorHJBHook": StableAnimatorHJBHook,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StableAnimatorModelForKSampler": "StableAnimator Model (KSampler)",
    "StableAnimatorKSamplerConditioning": "StableAnimator Conditioning (KSampler)",
    "StableAnimatorHJBHook": "StableAnimator HJB Hook (KSampler)",
}
