"""StableAnimator as a core ComfyUI ``MODEL``: a ``BaseModel`` sampled like SVD-xt, in a real ``ModelPatcher``.

Imported only inside ComfyUI (with ``comfy_bridge``, the only modules that touch ComfyUI). What it relies on is
long-stable: ``BaseModel`` with ``ModelType.V_PREDICTION_EDM`` and SVD-xt's model config (sigma 0.002-700, the SD1.5
latent scale), ``extra_conds`` returning ``comfy.conds`` objects, ``ModelPatcher`` and its ``model_options``
post-CFG functions. Wrapper support (``comfy.patcher_extension``, used by EasyCache and the pose-feature cleanup) is
feature-detected.

How a KSampler step maps onto the official sampler: ComfyUI scales the input (x / sqrt(sigma^2 + 1)), passes
``0.25 log sigma`` and turns the v-prediction into the clean estimate exactly as SVD's Euler scheduler does. The
diffusion model runs the official frame windows *inside every model evaluation* (so any sampler and scheduler gets
them) and returns each conditioning's blended prediction; ComfyUI's CFG (or ``VideoLinearCFGGuidance``, the
official per-frame guidance ramp) mixes them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional

import torch

import comfy.conds
import comfy.model_base
import comfy.model_patcher
import comfy.supported_models
import comfy.utils

from ..stableanimator_core.sampling.controls import OFFICIAL, TermWindow, step_of_sigma
from ..stableanimator_core.sampling.frame_batch import FrameBatchDenoiser, PoseFrames, WindowSettings
from ..stableanimator_core.sampling.memory import sampling_memory_bytes
from . import comfy_bridge as bridge

try:
    import comfy.patcher_extension as _extension
except ImportError:  # older ComfyUI: no wrappers (EasyCache does not exist there either)
    _extension = None

log = logging.getLogger("StableAnimator")
COND_KEY = "stableanimator"  # the key our conditioning node puts in the CONDITIONING dicts
WRAPPER_KEY = "stableanimator"
WINDOWS_SHAPE_KEY = "stableanimator_windows"  # (tile size, frames) handed to memory_required via extra_conds_shapes


class NativeConditioning:
    """What one CONDITIONING entry carries besides the cross-attention tokens."""

    def __init__(self, reference_latent: torch.Tensor, added_time_ids: torch.Tensor, pose: PoseFrames,
                 pose_enabled: bool, windows: WindowSettings, terms: tuple[TermWindow, TermWindow] = (OFFICIAL, OFFICIAL),
                 extras: Optional[dict[str, Any]] = None):
        self.reference_latent = reference_latent  # [1, 4, h, w] unscaled posterior mode (zeros: unconditional)
        self.added_time_ids = added_time_ids  # [1, 3]
        self.pose = pose
        self.pose_enabled = pose_enabled
        self.windows = windows
        self.terms = terms  # (pose, identity): strength and step range of each (sampling.controls)
        self.extras = extras or {}  # e.g. what the HJB hook needs (reference image and face box)


# Layer types ComfyUI can stream in low-VRAM mode once they are its own cast-on-use classes (comfy.ops)
_STREAMABLE = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.GroupNorm,
               torch.nn.LayerNorm)


def stream_on_demand(module: torch.nn.Module) -> int:
    """Give the UNet's and PoseNet's plain layers ComfyUI's cast-on-use classes (``comfy.ops.disable_weight_init``,
    subclasses of the same torch layers with the same parameters), so that ComfyUI's partial (low-VRAM) loading can
    leave some of them in RAM and copy their weights to the GPU when each runs. Until ComfyUI asks for that they run
    the plain torch forward: the same numbers. Returns how many layers changed class."""
    changed = 0
    for layer in module.modules():
        if type(layer) not in _STREAMABLE:
            continue  # already converted, or another type (an fp8-parametrized layer stays as it is)
        cast = _cast_class(type(layer))
        if cast is not None:
            layer.__class__ = cast
            changed += 1
    return changed


_PROBE_ARGS = {torch.nn.Linear: (1, 1), torch.nn.Conv1d: (1, 1, 1), torch.nn.Conv2d: (1, 1, 1),
               torch.nn.Conv3d: (1, 1, 1), torch.nn.GroupNorm: (1, 1), torch.nn.LayerNorm: (1,)}


@functools.lru_cache(maxsize=None)
def _cast_class(plain: type) -> Optional[type]:
    """ComfyUI's cast-on-use class for a torch layer type, if swapping an instance's class is enough: the class
    must subclass the torch one and its instances hold no state a plain layer lacks (a ComfyUI version whose
    layers set more in ``__init__`` keeps the plain class, and its partial loading moves those layers whole)."""
    import comfy.ops

    cast = getattr(comfy.ops.disable_weight_init, plain.__name__, None)
    if cast is None or not issubclass(cast, plain) or not hasattr(cast, "comfy_cast_weights"):
        return None
    try:
        extra = set(vars(cast(*_PROBE_ARGS[plain]))) - set(vars(plain(*_PROBE_ARGS[plain])))
    except Exception:  # another constructor: do not guess
        return None
    if extra:
        log.info("StableAnimator: ComfyUI's %s holds %s; that layer type is not streamed in low-VRAM mode",
                 cast.__qualname__, ", ".join(sorted(extra)))
        return None
    return cast


class CONDHostFlags(comfy.conds.CONDRegular):
    """Per-sample flags as a tuple of floats. ComfyUI moves tensor conditioning to the GPU before every evaluation,
    and the model reads these on the host: as a tensor they would cost a device-to-host sync per evaluation."""

    def process_cond(self, batch_size, **kwargs):
        repeats = -(-batch_size // len(self.cond))
        return self._copy_with(tuple((self.cond * repeats)[:batch_size]))

    def can_concat(self, other):
        return len(self.cond) == len(other.cond)

    def concat(self, others):
        return tuple(v for c in (self, *others) for v in c.cond)

    def size(self):
        return [len(self.cond)]


class StableAnimatorDiffusionModel(torch.nn.Module):
    """``BaseModel.diffusion_model``: runs ComfyUI's diffusion-model wrappers (EasyCache, ...) around the core
    :class:`FrameBatchDenoiser`."""

    def __init__(self, denoiser: FrameBatchDenoiser):
        super().__init__()
        self.denoiser = denoiser
        # Tensors ComfyUI's partial loading cannot stream and may leave in RAM: those of modules without the
        # cast-on-use classes (the blend factors, PoseNet's scale, fp8-stored layers and their scales). Moved on use.
        self._unstreamed = [m for m in denoiser.modules() if not hasattr(m, "comfy_cast_weights")
                            and any(True for _ in (*m.parameters(recurse=False), *m.buffers(recurse=False)))]

    def _place_unstreamed(self, device: torch.device) -> None:
        for module in self._unstreamed:  # looked up on each call: patches may replace the tensors
            for p in module.parameters(recurse=False):
                if p.device != device:
                    p.data = p.data.to(device)
            for name, b in module.named_buffers(recurse=False):
                if b.device != device:
                    module._buffers[name] = b.to(device)

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):
        wrappers = []
        if _extension is not None and hasattr(_extension, "WrapperExecutor"):
            wrappers = _extension.get_all_wrappers(_extension.WrappersMP.DIFFUSION_MODEL, transformer_options)
        if not wrappers:
            return self._forward(x, timesteps, context, control, transformer_options, **kwargs)
        uuids = transformer_options.get("uuids") or []
        if len(uuids) <= 1:
            return self._wrapped(wrappers, x, timesteps, context, control, transformer_options, kwargs)
        # Wrappers such as EasyCache keep one cache per conditioning and expect one sample per conditioning; here a
        # conditioning is a whole video (many batch entries), so each one goes through the wrappers on its own.
        n = len(uuids)
        per = x.shape[0] // n
        outs = []
        for b in range(n):
            part = slice(b * per, (b + 1) * per)
            options = dict(transformer_options, uuids=[uuids[b]])
            if "cond_or_uncond" in transformer_options:
                options["cond_or_uncond"] = [transformer_options["cond_or_uncond"][b]]
            sliced = {k: (v[part] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == x.shape[0]
                          or isinstance(v, tuple) and len(v) == x.shape[0] else v)
                      for k, v in kwargs.items()}
            outs.append(self._wrapped(wrappers, x[part], timesteps[part], context[part], control, options, sliced))
        return torch.cat(outs)

    def _wrapped(self, wrappers, x, timesteps, context, control, transformer_options, kwargs):
        return _extension.WrapperExecutor.new_class_executor(self._forward, self, wrappers).execute(
            x, timesteps, context, control, transformer_options, **kwargs)

    def _forward(self, x, timesteps, context, control, transformer_options, **kwargs):
        if control is not None:
            raise ValueError("StableAnimator has no ControlNet inputs; its pose input is the skeleton conditioning")
        names = ("reference_latents", "added_time_ids", "pose", "pose_enabled", "windows", "num_video_frames")
        missing = [n for n in names + ("terms",) if n not in kwargs]
        if missing:
            raise ValueError("StableAnimator was given conditioning it cannot use (missing "
                             f"{', '.join(missing)}): connect positive and negative from StableAnimator Conditioning "
                             "(KSampler)")
        pose_term, identity_term = kwargs["terms"]
        scales = {}
        sample_sigmas = transformer_options.get("sample_sigmas")
        if sample_sigmas is not None:  # the step of this evaluation, for the terms' step ranges
            step, steps = step_of_sigma(sample_sigmas, transformer_options.get("sigmas", timesteps.new_ones(1)))
            scales = {"pose_scale": pose_term.scale(step, steps), "id_scale": identity_term.scale(step, steps)}
        elif not (pose_term.is_official and identity_term.is_official):
            raise ValueError("this sampler does not say which step it is at, so the conditioning's pose / identity "
                             "step ranges cannot be applied; use the official strengths and ranges")
        self._place_unstreamed(x.device)
        return self.denoiser(x, timesteps, context, **{n: kwargs[n] for n in names}, **scales)


class StableAnimatorComfyModel(comfy.model_base.BaseModel):
    def __init__(self, denoiser: FrameBatchDenoiser, device: Optional[torch.device] = None):
        # SVD-xt's model config gives the sampling settings and latent format; the UNet is ours, not created here
        config = comfy.supported_models.SVD_img2vid({"disable_unet_model_creation": True, "in_channels": 8,
                                                     "adm_in_channels": 768})
        super().__init__(config, comfy.model_base.ModelType.V_PREDICTION_EDM, device=device)
        self.diffusion_model = StableAnimatorDiffusionModel(denoiser)

    def extra_conds_shapes(self, **kwargs):
        native: Optional[NativeConditioning] = kwargs.get(COND_KEY)
        return {} if native is None else {WINDOWS_SHAPE_KEY: (native.windows.tile_size, native.pose.num_frames)}

    def memory_required(self, input_shape, cond_shapes={}):
        """What one model evaluation needs beyond the weights: one window's UNet call, not the whole video at once
        (ComfyUI's area formula would count every frame and partially load the UNet without need)."""
        windows = cond_shapes.get(WINDOWS_SHAPE_KEY) or []
        if not windows:
            return super().memory_required(input_shape, cond_shapes)
        tile, frames = max(w[0] for w in windows), max(w[1] for w in windows)
        denoiser = self.diffusion_model.denoiser
        both = input_shape[0] >= 2 * frames and denoiser.batch_branches  # positive and negative in one call
        return sampling_memory_bytes(denoiser.unet.config, input_shape[-1] * 8, input_shape[-2] * 8, frames, tile,
                                     both, denoiser.dtype)

    def extra_conds(self, **kwargs):
        native: Optional[NativeConditioning] = kwargs.get(COND_KEY)
        if native is None:
            raise ValueError("StableAnimator needs its own conditioning: connect positive and negative from "
                             "StableAnimator Conditioning (KSampler), not a text or SVD conditioning")
        noise = kwargs["noise"]
        frames = noise.shape[0]
        if native.pose.num_frames != frames:
            raise ValueError(f"the latent has {frames} frames but the conditioning has {native.pose.num_frames} "
                             "skeleton frames: connect the latent output of the same StableAnimator Conditioning")
        ref = native.reference_latent
        if ref.shape[-2:] != noise.shape[-2:]:
            raise ValueError(f"the latent is {noise.shape[-1] * 8}x{noise.shape[-2] * 8} but the conditioning was "
                             f"made for {ref.shape[-1] * 8}x{ref.shape[-2] * 8}")
        out = {
            "c_crossattn": comfy.conds.CONDCrossAttn(kwargs["cross_attn"]),
            "reference_latents": comfy.conds.CONDNoiseShape(comfy.utils.resize_to_batch_size(ref, frames)),
            "added_time_ids": comfy.conds.CONDRegular(native.added_time_ids),
            "pose": comfy.conds.CONDConstant(native.pose),
            "pose_enabled": CONDHostFlags((1.0 if native.pose_enabled else 0.0,) * frames),
            "windows": comfy.conds.CONDConstant(native.windows),
            "terms": comfy.conds.CONDConstant(native.terms),
            "num_video_frames": comfy.conds.CONDConstant(frames),
        }
        return out


def make_model_patcher(unet: torch.nn.Module, pose_net: torch.nn.Module, batch_cfg: bool = True):
    """A ModelPatcher over the pack's own UNet and PoseNet modules (shared, not copied)."""
    stream_on_demand(unet)
    stream_on_demand(pose_net)
    denoiser = FrameBatchDenoiser(unet, pose_net, batch_branches=batch_cfg)
    denoiser.on_window = bridge.check_interrupt  # Cancel within one window, not one step
    model = StableAnimatorComfyModel(denoiser, device=bridge.offload_device())
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=bridge.torch_device(),
                                               offload_device=bridge.offload_device())
    if _extension is not None and hasattr(patcher, "add_wrapper_with_key"):
        patcher.add_wrapper_with_key(_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, _drop_pose_cache_after)
    return patcher


def _drop_pose_cache_after(executor, *args, **kwargs):
    """Around one whole sampling run: report the UNet window calls, free the cached PoseNet features."""
    guider = getattr(executor, "class_obj", None)
    model = getattr(getattr(guider, "model_patcher", None), "model", None)
    denoiser = model.diffusion_model.denoiser if isinstance(model, StableAnimatorComfyModel) else None
    before = denoiser.window_calls if denoiser is not None else 0
    try:
        return executor(*args, **kwargs)
    finally:
        if denoiser is not None:
            log.info("StableAnimator: %d UNet window calls", denoiser.window_calls - before)
            denoiser.clear_cache()


def denoiser_of(patcher) -> FrameBatchDenoiser:
    return patcher.model.diffusion_model.denoiser


def add_post_cfg_hook(patcher, hook: Callable[[torch.Tensor, int, int], torch.Tensor]):
    """A clone of ``patcher`` whose post-CFG function replaces the guided clean estimate of step i by
    ``hook(x0 [1, F, 4, h, w], i, steps)``. The step is the index of the evaluation's sigma in the schedule;
    evaluations at sigmas outside it (a sampler's intermediate points) pass unchanged."""
    clone = patcher.clone()

    def post_cfg(args):
        denoised = args["denoised"]
        sigmas = args["model_options"].get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            return denoised
        sigma = float(args["sigma"].reshape(-1)[0])
        hits = [i for i, s in enumerate(sigmas[:-1].tolist()) if abs(s - sigma) <= 1e-5 * max(abs(s), 1e-8)]
        if not hits:
            return denoised
        refined = hook(denoised[None].float(), hits[0], len(sigmas) - 1)
        return refined[0].to(denoised.dtype)

    clone.set_model_sampler_post_cfg_function(post_cfg)
    return clone
