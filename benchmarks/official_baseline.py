"""The official StableAnimator pipeline as a benchmark baseline, imported at run time from a checkout.

Nothing of the official code is copied here: ``import_official(PATH)`` imports it from ``PATH`` (e.g. a clone of
github.com/Francis-Rings/StableAnimator at 020e7f2). Two things stop that code from running on a machine without
xformers or without CUDA; both are worked around here, for the benchmark only:

* its attention processors refuse to import without xformers (``print(1/0)``) and call
  ``xformers.ops.memory_efficient_attention``. A stand-in ``xformers`` module (never installed, only put in
  ``sys.modules`` while the official modules import) maps that call to ``scaled_dot_product_attention``, and the
  official modules and diffusers' ``XFormersAttnProcessor`` are told xformers is available. Same maths (scale
  1/sqrt(head_dim)), another kernel: every report calls this baseline "official (xformers→SDPA stand-in)".
* its pipelines run ``with torch.cuda.device(device)``, which raises on CPU-only PyTorch; for a CPU run that
  context is replaced by a no-op during the call.

Weights: the official modules are built on ``meta`` and filled with ``load_state_dict(ours, assign=True)``, so
both pipelines compute with the very same tensors (bit-identical, and no second copy in memory).
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Optional

import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn

from bench_measure import StageClock, synchronize
from bench_models import CLIP_MEAN, CLIP_STD, BenchInputs, fullsize_configs, scheduler_config
from stableanimator_core.loading.bundle import StableAnimatorModels
from stableanimator_core.pipeline.animate import latent_noise

LABEL = "official (xformers→SDPA stand-in)"


# ----------------------------------------------------------------------------- the xformers stand-in

def memory_efficient_attention(query, key, value, attn_bias=None, p: float = 0.0, scale=None, op=None):
    """xformers' call on ``[B*H, L, D]`` (or ``[B, L, H, D]``) tensors, computed by SDPA."""
    if attn_bias is not None:
        raise NotImplementedError("the stand-in supports attn_bias=None only (all StableAnimator calls)")
    if query.ndim == 4:  # xformers' BMHK layout
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=scale).transpose(1, 2)
    return F.scaled_dot_product_attention(query, key, value, dropout_p=p, scale=scale)


def xformers_stand_in() -> tuple[types.ModuleType, types.ModuleType]:
    xf = types.ModuleType("xformers")
    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = memory_efficient_attention
    xf.ops = ops
    xf.__version__ = "0.0.0+sdpa-stand-in"
    return xf, ops


@contextlib.contextmanager
def _xformers_available(path: Path):
    import diffusers.utils as du
    import diffusers.utils.import_utils as iu

    xf, ops = xformers_stand_in()
    saved_modules = {n: sys.modules.get(n) for n in ("xformers", "xformers.ops")}
    saved_flags = (iu.is_xformers_available, getattr(du, "is_xformers_available", None))
    sys.modules["xformers"], sys.modules["xformers.ops"] = xf, ops
    iu.is_xformers_available = lambda: True
    if saved_flags[1] is not None:
        du.is_xformers_available = lambda: True
    sys.path.insert(0, str(path))
    try:
        yield xf
    finally:
        sys.path.remove(str(path))
        iu.is_xformers_available = saved_flags[0]
        if saved_flags[1] is not None:
            du.is_xformers_available = saved_flags[1]
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@contextlib.contextmanager
def cuda_device_noop_on_cpu(device: torch.device):
    """``torch.cuda.device(cpu)`` raises on CPU-only PyTorch; the official code only uses it for empty_cache."""
    if device.type == "cuda":
        yield
        return
    saved = torch.cuda.device
    torch.cuda.device = lambda *a, **k: contextlib.nullcontext()
    try:
        yield
    finally:
        torch.cuda.device = saved


def import_official(path: Path, hjb: bool = False) -> types.SimpleNamespace:
    path = Path(path).resolve()
    if not (path / "animation" / "modules" / "unet.py").is_file():
        raise FileNotFoundError(f"{path} is not a StableAnimator checkout (no animation/modules/unet.py)")
    import importlib

    names = {"unet": "animation.modules.unet", "proc": "animation.modules.attention_processor",
             "proc_norm": "animation.modules.attention_processor_normalized", "pose": "animation.modules.pose_net",
             "face": "animation.modules.id_encoder", "pipe": "animation.pipelines.inference_pipeline_animation"}
    if hjb:
        names.update(pipe_pro="animation.pipelines.inference_pipeline_animation_pro",
                     euler_pro="animation.pipelines.euler_discrete_pro", refined_vae="animation.modules.refined_vae",
                     iresnet="animation.helper.backbones.iresnet")
    with _xformers_available(path) as xf:
        mods = {k: importlib.import_module(v) for k, v in names.items()}
    # the processors check availability at call time too, through the name they imported
    for key in ("proc", "proc_norm"):
        mods[key].is_xformers_available = lambda: True
        mods[key].xformers = xf
    import diffusers.models.attention_processor as dap

    dap.xformers = xf  # diffusers' XFormersAttnProcessor (the official temporal blocks) calls it by this name
    return types.SimpleNamespace(**mods)


# ----------------------------------------------------------------------------- official models on our weights

def _assign(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    module.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"official {what}: tensors not filled from our weights: {left[:5]}")
    return module.requires_grad_(False).eval()


def official_unet(off, unet_config: dict[str, Any], meta: bool = True) -> nn.Module:
    """The official UNet with the processors of ``inference_basic.py:245-286`` (on ``meta``, unfilled)."""
    from diffusers.models.attention_processor import XFormersAttnProcessor

    with torch.device("meta") if meta else contextlib.nullcontext():
        unet = off.unet.UNetSpatioTemporalConditionModel(**unet_config)
        procs = {}
        for name in unet.attn_processors.keys():
            if "temporal_transformer_blocks" in name:
                procs[name] = XFormersAttnProcessor()
                continue
            if name.startswith("mid_block"):
                hidden = unet.config.block_out_channels[-1]
            elif name.startswith("up_blocks"):
                hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
            else:
                hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
            if name.endswith("attn1.processor"):
                procs[name] = off.proc.AnimationAttnProcessor(hidden_size=hidden, cross_attention_dim=None, rank=128)
            else:
                procs[name] = off.proc_norm.AnimationIDAttnNormalizedProcessor(
                    hidden_size=hidden, cross_attention_dim=unet.config.cross_attention_dim, rank=128)
        unet.set_attn_processor(procs)
    return unet


class OfficialPipeline:
    """The official basic pipeline (or, with ``hjb_iterations``, the HJB one) on our models' weights."""

    def __init__(self, path: Path, models: StableAnimatorModels, dtype: torch.dtype, device: torch.device,
                 hjb_iterations: int = 0):
        self.device, self.dtype, self.hjb = device, dtype, hjb_iterations
        off = self.off = import_official(path, hjb=hjb_iterations > 0)
        cfg = fullsize_configs()
        self.unet = _assign(official_unet(off, cfg["unet"]), models.unet.state_dict(), "UNet")
        with torch.device("meta"):
            pose_net = off.pose.PoseNet(noise_latent_channels=cfg["pose_net"]["noise_latent_channels"])
            face = off.face.FusionFaceId(**cfg["face_encoder"])
        self.pose_net = _assign(pose_net, models.pose_net.state_dict(), "PoseNet")
        self.face_encoder = _assign(face, models.face_encoder.state_dict(), "FusionFaceId")
        from diffusers import EulerDiscreteScheduler
        from transformers import CLIPImageProcessor

        feature_extractor = CLIPImageProcessor(image_mean=CLIP_MEAN, image_std=CLIP_STD, do_normalize=True,
                                               do_center_crop=False, do_resize=False, do_rescale=False)
        if hjb_iterations:
            # inference_op.py: RefinedAutoencoderKLTemporalDecoder with decoder checkpointing, fp32, the pro
            # scheduler holding the iresnet100
            with torch.device("meta"):
                vae = off.refined_vae.RefinedAutoencoderKLTemporalDecoder(**cfg["vae"])
                face_net = off.iresnet.iresnet100(False, fp16=False)
            vae = _assign(vae, models.vae.state_dict(), "VAE")
            vae.decoder.gradient_checkpointing = True
            face_net = _assign(face_net, models.face_embedder.state_dict(), "iresnet100")
            scheduler = off.euler_pro.EulerDiscreteSchedulerPro.from_config(scheduler_config())
            scheduler.init_face_model(face_embedding_extractor=face_net)
            cls = off.pipe_pro.InferenceAnimationProPipeline
        else:
            # inference_basic.py casts the whole pipeline, VAE included, to the weight dtype
            vae = models.vae if dtype == torch.float32 else copy.deepcopy(models.vae).to(dtype)
            scheduler = EulerDiscreteScheduler.from_config(scheduler_config())
            cls = off.pipe.InferenceAnimationPipeline
        self.pipe = cls(vae=vae, image_encoder=models.image_encoder, unet=self.unet, scheduler=scheduler,
                        feature_extractor=feature_extractor, pose_net=self.pose_net, face_encoder=self.face_encoder)
        self.pipe.set_progress_bar_config(disable=True)

    def run(self, inputs: BenchInputs, height: int, width: int, steps: int, tile: int, overlap: int,
            guidance: float, decode_chunk: int, seed: int, clock: StageClock, decode: bool = True,
            hjb_times: Optional[list[float]] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """One generation; stages go to ``clock``. Returns (final latents fp32, frames [F, H, W, 3] or None)."""
        pipe, device = self.pipe, self.device
        num_frames = len(inputs.poses)
        captured: dict[str, torch.Tensor] = {}
        started = {"step": False}

        def first_pose_call(module, args):
            if not started["step"]:
                started["step"] = True
                clock.start("step0")

        def on_step_end(p, i, t, kwargs):
            captured["latents"] = kwargs["latents"]
            if i + 1 < steps:
                clock.start(f"step{i + 1}")
            else:
                clock.stop()
            return {}

        orig_decode = pipe.decode_latents

        def timed_decode(latents, *args, **kwargs):
            clock.start("decode")
            out = orig_decode(latents, *args, **kwargs)
            clock.stop()
            return out

        payloads = [self.pose_net.register_forward_pre_hook(first_pose_call)]
        pipe.decode_latents = timed_decode
        orig_step = pipe.scheduler.step
        if self.hjb and hjb_times is not None:
            def timed_step(*args, **kwargs):
                if not kwargs.get("refine_face"):
                    return orig_step(*args, **kwargs)
                synchronize(device)
                t0 = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # it prints every iteration
                    out = orig_step(*args, **kwargs)
                synchronize(device)
                hjb_times.append((time.perf_counter() - t0) / self.hjb)
                return out

            pipe.scheduler.step = timed_step
        # the official draws come from one generator: #1 the reference's noise augmentation (drawn inside),
        # #2 the initial latents, injected here (the pipeline draws them in its dtype; same values)
        generator = torch.Generator("cpu").manual_seed(seed)
        noise = latent_noise(seed, width, height, num_frames, tile).to(device, self.dtype)
        kwargs: dict[str, Any] = {}
        if self.hjb:
            kwargs = dict(eta_scheduler=0.1, start_refine_step=0, end_refine_step=steps - 1,
                          refine_reference_face_embeddings=inputs.reference_face_embedding.to(device),
                          target_face_mask_list=[list(b) for b in inputs.face_boxes],
                          num_optimization_iter=self.hjb)
        try:
            clock.start("encode")
            with cuda_device_noop_on_cpu(device):
                out = pipe(image=PIL.Image.fromarray(inputs.reference),
                           image_pose=[PIL.Image.fromarray(p) for p in inputs.poses], height=height, width=width,
                           num_frames=num_frames, tile_size=tile, tile_overlap=overlap, num_inference_steps=steps,
                           min_guidance_scale=guidance, max_guidance_scale=guidance, fps=7, motion_bucket_id=127,
                           noise_aug_strength=0.02, decode_chunk_size=decode_chunk, generator=generator,
                           latents=noise, validation_image_id_ante_embedding=inputs.arcface,
                           output_type="pt" if decode else "latent", callback_on_step_end=on_step_end, **kwargs)
            clock.stop()
        finally:
            for h in payloads:
                h.remove()
            pipe.decode_latents = orig_decode
            pipe.scheduler.step = orig_step
        latents = captured["latents"].float().cpu()
        frames = out.frames[0].permute(0, 2, 3, 1).float().cpu() if decode else None
        return latents, frames


# ----------------------------------------------------------------------------- FLOPs of the official calls

def official_unet_flops(path: Path, batch_frames: int, h: int, w: int, count: Callable) -> float:
    """FLOPs of one official batch-1 UNet call (cond branch, with pose) on ``meta``."""
    off = import_official(path)
    cfg = fullsize_configs()
    unet = official_unet(off, cfg["unet"]).to("meta")  # (AlphaBlender's torch.Tensor([...]) lands on CPU)
    ctx_dim = cfg["unet"]["cross_attention_dim"]
    ch0 = cfg["unet"]["block_out_channels"][0]
    m = torch.device("meta")
    sample = torch.empty(1, batch_frames, 8, h, w, device=m)
    ehs = torch.empty(1, 5, ctx_dim, device=m)
    ids = torch.empty(1, 3, device=m)
    pose = torch.empty(batch_frames, ch0, h, w, device=m)
    t = torch.empty((), device=m)
    with torch.no_grad(), torch.device(m):
        return count(lambda: unet(sample, t, encoder_hidden_states=ehs, added_time_ids=ids, pose_latents=pose,
                                  return_dict=False))
