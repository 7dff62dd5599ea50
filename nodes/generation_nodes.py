"""Generation nodes: CLIP image embedding, conditioning, the sampler (LATENT out) and decoding (IMAGE out).

Over 300 lines because it holds four node classes whose declarations (inputs, tooltips) are most of it; the
model math they call lives in ``stableanimator_core`` and the GPU handling in :mod:`.gpu_session`."""

from __future__ import annotations

import dataclasses
import logging
import math

import torch
from PIL import Image

from ..stableanimator_core.pipeline import conditioning as C
from ..stableanimator_core.pipeline import animate as P
from ..stableanimator_core.pipeline.decode import decode_latents, to_vae_latents
from ..stableanimator_core.sampling.controls import TermWindow
from ..stableanimator_core.errors import InputError
from ..stableanimator_core.pipeline.memory_estimate import warn_if_long
from ..stableanimator_core.settings import CONDITIONING, SAMPLER, widget_range
from ..stableanimator_core.hjb.sampler_hook import HJBStepHook
from ..stableanimator_core.hjb import reference_box, target_boxes_from_masks
from ..stableanimator_core.sampling.preview import preview_frame
from ..stableanimator_core.sampling.sampler import SamplerCallbacks, SamplerSettings, plan_sampling
from . import comfy_bridge as bridge
from . import core_encoders
from .payloads import CLIP_EMBEDS, COND, FACE, HJB, MODEL, AnimationConditioning, ClipEmbedding
from ..stableanimator_core.sampling.memory import decode_memory_bytes, encode_memory_bytes, sampling_memory_bytes
from .gpu_session import DECODE_ADVICE, ENCODE_ADVICE, SAMPLER_ADVICE, gpu_stage

log = logging.getLogger("StableAnimator")
CATEGORY = "StableAnimator"
# extra leading frames (the first-frame fix) travel on the LATENT, so every sampler passes them to the decoder
LEADING_FRAMES_KEY = "stableanimator_leading_frames"
CORE_VAE_TOOLTIP = ("Optional: ComfyUI's SVD VAE (e.g. from Image Only Checkpoint Loader on svd_xt.safetensors) "
                    "instead of the Model Loader's SVD folder; the same weights give the same result.")
CORE_CLIP_TOOLTIP = ("Optional: ComfyUI's CLIP vision of SVD-xt (ViT-H, e.g. from Image Only Checkpoint Loader on "
                     "svd_xt.safetensors) instead of the Model Loader's SVD folder, with the official preprocessing "
                     "(anti-aliased resize to 224x224, no crop).")


def _percent(default: float, tooltip: str):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": tooltip})


def _single_image(image: torch.Tensor, what: str) -> torch.Tensor:
    if image.ndim != 4 or image.shape[-1] < 3:
        raise InputError(f"{what} must be an IMAGE [batch, height, width, 3], got shape {tuple(image.shape)}")
    if image.shape[0] > 1:
        log.warning("%s has %d images; the first one is used", what, image.shape[0])
    C.check_reference_image(image[0])
    return image[0, :, :, :3]


class StableAnimatorCLIPEncode:
    DESCRIPTION = ("CLIP ViT-H image embedding of the reference photo (SVD's anti-aliased resize to 224x224, no "
                   "crop, as the official pipeline). It conditions appearance in every UNet block.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = (CLIP_EMBEDS,)
    RETURN_NAMES = ("clip_embeds",)
    OUTPUT_TOOLTIPS = ("The reference's CLIP image embedding.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "From StableAnimator Model Loader."}),
            "reference": ("IMAGE", {"tooltip": "The reference photo (the person to animate)."}),
        }, "optional": {
            "clip_vision": ("CLIP_VISION", {"tooltip": CORE_CLIP_TOOLTIP}),
        }}

    def encode(self, model, reference, clip_vision=None):
        ref = _single_image(reference, "reference")
        if clip_vision is not None:
            with gpu_stage([], "CLIP image encoding (core CLIP vision)", ENCODE_ADVICE):
                embeds = core_encoders.clip_embeds(clip_vision, C.to_uint8_rgb(ref),
                                                   model.models.face_encoder.clip_embeddings_dim)
            return (ClipEmbedding(embeds),)
        if model.models.image_encoder is None:
            raise InputError("CLIP image encoding needs SVD's CLIP image encoder, and StableAnimator Model Loader was "
                             f"given no SVD folder: {core_encoders.NO_CLIP}")
        with gpu_stage([model.encoders], "CLIP image encoding", ENCODE_ADVICE):
            return (ClipEmbedding(P.clip_embeds(model.models, ref)),)


class StableAnimatorConditioning:
    DESCRIPTION = ("Combines the reference (VAE latent of the noise-augmented reference at the output size, CLIP "
                   "embedding, ArcFace face tokens) with the skeleton frames and SVD's micro-conditioning. Outputs the "
                   "conditioning and an empty LATENT of the right frame count and size for the sampler.")
    CATEGORY = CATEGORY
    FUNCTION = "condition"
    RETURN_TYPES = (COND, "LATENT")
    RETURN_NAMES = ("conditioning", "latent")
    OUTPUT_TOOLTIPS = ("Everything the sampler is conditioned on.",
                       "Empty latent [frames, 4, height/8, width/8] for the sampler.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "From StableAnimator Model Loader."}),
            "reference": ("IMAGE", {"tooltip": "The reference photo, at any size (it is squashed to width x height "
                                               "like the official pipeline; crop it to that aspect first)."}),
            "clip_embeds": (CLIP_EMBEDS, {"tooltip": "From StableAnimator CLIP Encode."}),
            "face": (FACE, {"tooltip": "From StableAnimator Face Embed (ArcFace identity)."}),
            "pose_images": ("IMAGE", {"tooltip": "Skeleton frames, one per output frame (from StableAnimator DWPose "
                                                 "or another pose pack); resized to width x height."}),
            "width": ("INT", {"default": CONDITIONING.width, "min": 64, "max": 2048, "step": 64,
                              "tooltip": "Output width; StableAnimator was trained at 512x512 and 576x1024."}),
            "height": ("INT", {"default": CONDITIONING.height, "min": 64, "max": 2048, "step": 64, "tooltip": "Output height."}),
            "fps": ("INT", {"default": CONDITIONING.fps, "min": 1, "max": 60,
                            "tooltip": "SVD micro-conditioning fps (official 7; the model sees fps - 1). Not the "
                                       "frame rate of the saved video."}),
            "motion_bucket_id": ("INT", {"default": int(CONDITIONING.motion_bucket_id), "min": 0, "max": 1023,
                                         "tooltip": "SVD motion bucket (official 127)."}),
            "noise_aug_strength": ("FLOAT", {"default": CONDITIONING.noise_aug_strength, **widget_range("noise_aug_strength"),
                                             "step": 0.01,
                                             "tooltip": "Noise added to the reference before VAE encoding (official "
                                                        "0.02)."}),
            "noise_seed": ("INT", {"default": SAMPLER.seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                   "control_after_generate": True,
                                   "tooltip": "Seed of the reference's noise augmentation. Give the sampler the same "
                                              "seed to reproduce the official code's random draws exactly."}),
        }, "optional": {
            "id_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                      "tooltip": "Weight of the ArcFace identity (the ID adapter's scale; official "
                                                 "1.0). Lower it if the face looks pasted on or stiff; 0 = no ID "
                                                 "adapter (the CLIP appearance stays)."}),
            "id_start_percent": _percent(0.0, "Identity is used from this fraction of the denoising steps on."),
            "id_end_percent": _percent(1.0, "Identity is used up to this fraction of the steps (1.0 = to the end)."),
            "pose_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                        "tooltip": "Multiplier of PoseNet's features (official 1.0). Lower it when "
                                                   "the skeleton's proportions fight the reference's body; 0 = no "
                                                   "pose."}),
            "pose_start_percent": _percent(0.0, "Pose is used from this fraction of the denoising steps on."),
            "pose_end_percent": _percent(1.0, "Pose is used up to this fraction of the steps; ending early lets the "
                                              "last steps refine details without the skeleton."),
            "vae": ("VAE", {"tooltip": CORE_VAE_TOOLTIP}),
            "first_frame_fix": ("BOOLEAN", {"default": False,
                                            "tooltip": "SVD's first frame is often blurry (official issue #94): "
                                                       "generate one extra frame on a copy of the first pose and drop "
                                                       "it at decoding. The video keeps its length."}),
        }}

    def condition(self, model, reference, clip_embeds, face, pose_images, width, height, fps, motion_bucket_id,
                  noise_aug_strength, noise_seed, id_strength=1.0, id_start_percent=0.0, id_end_percent=1.0,
                  pose_strength=1.0, pose_start_percent=0.0, pose_end_percent=1.0, first_frame_fix=False, vae=None):
        if pose_images.ndim != 4 or pose_images.shape[0] < 1:
            raise InputError("pose_images must be a batch of skeleton images with at least one frame")
        width, height = C.round_to_64(width, "width"), C.round_to_64(height, "height")
        identity = TermWindow(float(id_strength), float(id_start_percent), float(id_end_percent))
        pose = TermWindow(float(pose_strength), float(pose_start_percent), float(pose_end_percent))
        for window, name in ((identity, "identity"), (pose, "pose")):
            try:
                window.validate(name)
            except ValueError as exc:
                raise InputError(str(exc)) from exc
        settings = P.ConditioningSettings(width, height, fps, float(motion_bucket_id), noise_aug_strength,
                                          identity=identity, pose=pose, first_frame_fix=bool(first_frame_fix))
        ref = _single_image(reference, "reference")
        vae_module, vae_group = core_encoders.vae_for(model, vae, "Reference encoding")
        with gpu_stage([model.encoders, vae_group], "reference encoding", ENCODE_ADVICE,
                       memory_required=encode_memory_bytes(width, height)):
            embedding = None if face.embedding is None else face.embedding
            tokens = P.face_tokens(model.models, embedding, clip_embeds.embeds)
            latent = P.reference_latent(dataclasses.replace(model.models, vae=vae_module), ref, settings, noise_seed)
        cond = P.assemble_conditioning(clip_embeds.embeds, tokens, latent, pose_images[..., :3], settings)
        warn_if_long(cond.num_frames, width, height, comfy_batches=3,
                     hint="ComfyUI holds the driving frames, skeletons and decoded video as float32; load fewer "
                          "frames at a time, e.g. with VHS Load Video's frame_load_cap")
        ref_uint8 = C.to_uint8_rgb(ref)
        face_box = face.box if face.image_hw == ref_uint8.shape[:2] else None
        samples = torch.zeros((cond.num_frames, 4, height // 8, width // 8))
        info = {"width": width, "height": height, "fps": fps, "motion_bucket_id": motion_bucket_id,
                "noise_aug_strength": noise_aug_strength, "noise_seed": noise_seed, "id": identity, "pose": pose,
                "first_frame_fix": bool(first_frame_fix)}
        latent = {"samples": samples}
        if cond.leading_frames:
            latent[LEADING_FRAMES_KEY] = cond.leading_frames
        return (AnimationConditioning(cond, ref_uint8, face_box, info), latent)


class StableAnimatorSampler:
    DESCRIPTION = ("Denoises the video with SVD-xt's Euler sampler, classifier-free guidance and overlapping frame "
                   "windows for long videos, optionally with the HJB face optimisation. Outputs LATENT; decode it with "
                   "StableAnimator Decode. Shows progress with previews and stops within one step on Cancel.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Denoised latents [frames, 4, height/8, width/8] (the VAE's own latents, as core samplers "
                       "return; core VAEDecode with the SVD VAE decodes them too).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From StableAnimator Model Loader."}),
                "conditioning": (COND, {"tooltip": "From StableAnimator Conditioning."}),
                "latent": ("LATENT", {"tooltip": "The empty latent from StableAnimator Conditioning (frame count "
                                                 "and size must match the conditioning)."}),
                "seed": ("INT", {"default": SAMPLER.seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "control_after_generate": True,
                                 "tooltip": "Initial-noise seed (CPU generator: the same video on every GPU)."}),
                "steps": ("INT", {"default": SAMPLER.steps, "min": 1, "max": 200, "tooltip": "Euler steps (official 25)."}),
                "guidance": ("FLOAT", {"default": SAMPLER.max_guidance, "min": 1.01, "max": 20.0, "step": 0.1,
                                       "tooltip": "Classifier-free guidance scale (official 3.0); must be above 1."}),
                "tile_size": ("INT", {"default": SAMPLER.tile_size, "min": 2, "max": 128,
                                      "tooltip": "Frames per window (official 16). Lower it to save VRAM; videos "
                                                 "shorter than this use one window."}),
                "tile_overlap": ("INT", {"default": SAMPLER.tile_overlap, "min": 1, "max": 127,
                                         "tooltip": "Frames shared by consecutive windows (official 4); must be below "
                                                    "tile_size."}),
            },
            "optional": {
                "hjb": (HJB, {"tooltip": "HJB face-optimisation settings (StableAnimator HJB Face Optimisation); "
                                         "needs face_masks."}),
                "face_masks": ("MASK", {"tooltip": "Per-frame face masks (any resolution; e.g. DWPose's face_masks) "
                                                   "for HJB. One per frame, or one for all."}),
                "guidance_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 20.0, "step": 0.1,
                                             "tooltip": "If above 1: guidance ramps linearly from this value on the "
                                                        "first frame to 'guidance' on the last (SVD's ramp). 0 = off."}),
                "keep_model_loaded": ("BOOLEAN", {"default": False,
                                                  "tooltip": "Keep the UNet on the GPU after sampling."}),
                "batch_cfg": ("BOOLEAN", {"default": True,
                                          "tooltip": "Run the unconditional and conditional passes as one batch "
                                                     "(faster, same result); turn off to lower peak VRAM."}),
            },
        }

    def sample(self, model, conditioning, latent, seed, steps, guidance, tile_size, tile_overlap, hjb=None,
               face_masks=None, guidance_start=0.0, keep_model_loaded=False, batch_cfg=True):
        cond = conditioning.cond
        samples = latent["samples"]
        expected = (cond.num_frames, 4, cond.size_hw[0] // 8, cond.size_hw[1] // 8)
        if tuple(samples.shape) != expected:
            raise InputError(
                f"The latent has shape {tuple(samples.shape)} but the conditioning needs {expected} "
                f"({cond.num_frames} skeleton frames at {cond.size_hw[1]}x{cond.size_hw[0]}). Connect the latent "
                f"output of the same StableAnimator Conditioning node."
            )
        if not math.isfinite(guidance_start):
            raise InputError(f"guidance_start must be a finite number (0 = off), got {guidance_start!r}")
        # the widgets as set, checked where made (InputError): overlap >= tile_size is refused, not clamped
        requested = SamplerSettings(steps=steps, min_guidance=guidance_start if guidance_start > 1.0 else guidance,
                                    max_guidance=guidance, tile_size=tile_size, tile_overlap=tile_overlap,
                                    seed=seed, batch_cfg=batch_cfg)
        # HJB's window option may widen the window to all frames (the official HJB script); a video shorter than
        # the window runs one smaller window
        tile = tile_size if hjb is None else hjb.settings.tile_size_for(cond.num_frames, tile_size)
        settings = dataclasses.replace(requested, tile_size=tile, tile_overlap=min(tile_overlap, max(tile - 1, 0)))
        plan = plan_sampling(cond.num_frames, settings)
        refiner_stage, groups = None, [model.sampling]
        if hjb is not None:
            if not any(hjb.settings.is_refined(i) for i in range(steps)):
                raise InputError(f"HJB start_step {hjb.settings.start_step} is beyond the last step ({steps - 1} of "
                                 f"{steps} steps), so HJB would never run; lower start_step or raise steps, or "
                                 f"disconnect 'hjb'")
            refiner_stage = self._hjb_targets(conditioning, face_masks)
            hjb_vae, hjb_vae_group = core_encoders.vae_for(model, hjb.core_vae, "HJB (it decodes the faces)")
            groups += [hjb_vae_group, hjb.face_net_group]
        progress = bridge.Progress(plan.progress_total(hjb.settings if hjb is not None else None))
        done = {"calls": 0, "hjb": 0}

        def on_call(calls, total):
            done["calls"] = calls
            progress.update(calls + done["hjb"])
            bridge.check_interrupt()

        def on_step(i, n, x0):
            progress.update(done["calls"] + done["hjb"], Image.fromarray(preview_frame(x0)))

        def on_hjb(it, loss):
            done["hjb"] += 1
            progress.update(done["calls"] + done["hjb"])
            bridge.check_interrupt()

        height, width = cond.size_hw
        need = sampling_memory_bytes(model.models.unet.config, width, height, cond.num_frames, tile, batch_cfg,
                                     model.dtype)
        if hjb is not None:
            need += decode_memory_bytes(width, height, hjb.settings.decode_chunk_size)
        with gpu_stage(groups, "sampling" + (" with HJB" if hjb else ""), SAMPLER_ADVICE, keep_model_loaded,
                       memory_required=need):
            refiner = None
            if hjb is not None:
                target_boxes, ref_box = refiner_stage
                refiner = HJBStepHook.build(hjb_vae, hjb.face_net, conditioning.reference, ref_box,
                                            target_boxes, hjb.settings, on_iteration=on_hjb,
                                            check_cancel=bridge.check_interrupt)
            out = P.run_sampler(model.models, cond, settings, refiner, SamplerCallbacks(on_call, on_step),
                                device=bridge.torch_device())
            if refiner is not None and refiner.losses:
                log.info("HJB face loss: first %.4f, last %.4f over %d iterations", refiner.losses[0],
                         refiner.losses[-1], len(refiner.losses))
        # other keys of the LATENT (the first-frame fix's count) go on to the decoder, as KSampler passes them;
        # samples in ComfyUI's LATENT convention (the VAE's own latents), so core samplers' latents mix
        return ({**latent, "samples": to_vae_latents(model.models.vae, out[0].float().cpu())},)

    @staticmethod
    def _hjb_targets(conditioning: AnimationConditioning, face_masks):
        cond = conditioning.cond
        if face_masks is None:
            raise InputError("HJB needs per-frame face masks: connect 'face_masks' (e.g. the face_masks output of "
                             "StableAnimator DWPose), or disconnect 'hjb'.")
        height, width = cond.size_hw
        if cond.leading_frames and face_masks.ndim == 3 and face_masks.shape[0] == cond.output_frames > 1:
            # one mask per driving frame: the first-frame fix's extra first frame takes the first one
            face_masks = torch.cat([face_masks[:1]] * cond.leading_frames + [face_masks])
        boxes = target_boxes_from_masks(face_masks, cond.num_frames, height, width)
        if conditioning.reference_face_box is None:
            raise InputError("HJB needs the reference face box: connect the face output of StableAnimator Face Embed "
                             "computed on the same reference image (identity mode).")
        ref_box = reference_box(conditioning.reference.shape[:2], box=conditioning.reference_face_box)
        return boxes, ref_box


class StableAnimatorDecode:
    DESCRIPTION = ("Decodes latents to frames with SVD's temporal VAE decoder, decode_chunk_size frames at a time "
                   "(frames inside a chunk are smoothed together; the official value is 4, larger is smoother and "
                   "needs more VRAM). Drops the extra first frame of the first-frame fix.")
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Frames [frames, height, width, 3], 0..1, for CreateVideo / SaveVideo / VHS Video Combine.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "From StableAnimator Model Loader."}),
            "latent": ("LATENT", {"tooltip": "From StableAnimator Sampler or a core sampler (KSampler)."}),
            "decode_chunk_size": ("INT", {"default": 4, "min": 0, "max": 64,
                                          "tooltip": "Frames decoded together (official 4; more is smoother and "
                                                     "needs more VRAM). 0 = as many as the free memory allows."}),
        }, "optional": {
            "vae": ("VAE", {"tooltip": CORE_VAE_TOOLTIP}),
        }}

    def decode(self, model, latent, decode_chunk_size, vae=None):
        samples = latent["samples"]
        if samples.ndim != 4 or samples.shape[1] != 4:
            raise InputError(f"expected a StableAnimator/SVD latent [frames, 4, h, w], got {tuple(samples.shape)}")
        leading = int(latent.get(LEADING_FRAMES_KEY, 0))
        if leading:
            # the first-frame fix: the extra first frame is dropped before decoding (never shown, never decoded)
            samples = P.drop_leading_frames(samples[None], leading)[0]
        progress = bridge.Progress(samples.shape[0])

        def on_chunk(done, total):
            progress.update(round(done * samples.shape[0] / total))
            bridge.check_interrupt()

        device = bridge.torch_device()
        need = decode_memory_bytes(samples.shape[-1] * 8, samples.shape[-2] * 8, decode_chunk_size)
        vae_module, vae_group = core_encoders.vae_for(model, vae, "Decoding")
        with gpu_stage([vae_group], "decoding", DECODE_ADVICE, memory_required=need):
            frames = decode_latents(vae_module, samples[None], decode_chunk_size, on_chunk,
                                    lambda: bridge.free_memory_bytes(device), dtype=model.decode_dtype,
                                    scaled=False)
        return (frames,)


NODE_CLASS_MAPPINGS = {
    "StableAnimatorCLIPEncode": StableAnimatorCLIPEncode,
    "StableAnimatorConditioning": StableAnimatorConditioning,
    "StableAnimatorSampler": StableAnimatorSampler,
    "StableAnimatorDecode": StableAnimatorDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StableAnimatorCLIPEncode": "StableAnimator CLIP Encode",
    "StableAnimatorConditioning": "StableAnimator Conditioning",
    "StableAnimatorSampler": "StableAnimator Sampler",
    "StableAnimatorDecode": "StableAnimator Decode",
}
