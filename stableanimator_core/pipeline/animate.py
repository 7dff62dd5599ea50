"""StableAnimator end to end, as plain functions over a bundle of loaded models.

The stages are separate so the ComfyUI nodes can expose each one (conditioning, sampling, decoding), while
:func:`animate` chains them for the command line and the parity replay.

Randomness follows the official order on one CPU generator seeded with ``seed``: first the noise that
augments the reference before VAE encoding (``[1, 3, H, W]``), then the initial latent noise for one window
(``[1, T, 4, h, w]``). A CPU generator makes a seed give the same video on every device.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from . import conditioning as C
from ..errors import InputError
from .decode import decode_latents
from ..numerics import require_finite
from ..sampling.loop import StepHook
from ..sampling.sampler import VAE_SCALE, SamplerCallbacks, SamplerModels, SamplerSettings, initial_noise, sample
from ..loading.bundle import StableAnimatorModels
from ..sampling.parallel import WorkSplit
from ..settings import ConditioningSettings
from ..sampling.windows import effective_tile_size


def reference_noise(seed: int, width: int, height: int) -> torch.Tensor:
    """Draw #1 of the official order: the reference's noise augmentation."""
    g = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, 3, height, width), generator=g, dtype=torch.float32)


def latent_noise(seed: int, width: int, height: int, num_frames: int, tile_size: int) -> torch.Tensor:
    """Draw #2 of the official order (after skipping draw #1): initial noise for one window."""
    g = torch.Generator("cpu").manual_seed(seed)
    torch.randn((1, 3, height, width), generator=g, dtype=torch.float32)
    return initial_noise(g, effective_tile_size(num_frames, tile_size), height // VAE_SCALE, width // VAE_SCALE)


@torch.no_grad()
def clip_embeds(models: StableAnimatorModels, reference: np.ndarray | torch.Tensor,
                recorder: Optional[dict] = None) -> torch.Tensor:
    """CLIP image embedding of the reference, ``[1, 1, D]`` float32 on CPU."""
    pixels = C.clip_pixels(C.to_uint8_rgb(reference))
    embeds = C.encode_clip(models.image_encoder, pixels).float().cpu()
    require_finite(embeds, "CLIP image encoding", next(models.image_encoder.parameters()).dtype)
    if recorder is not None:
        recorder.update(clip_pixel_values=pixels, clip_image_embeds=embeds[:, 0])
    return embeds


@torch.no_grad()
def face_tokens(models: StableAnimatorModels, arcface_embedding: Optional[np.ndarray | torch.Tensor],
                clip: torch.Tensor, recorder: Optional[dict] = None) -> torch.Tensor:
    """``[1, 4, D]`` face tokens; ``arcface_embedding=None`` gives zeros, the explicit no-identity mode
    (the official code only falls back to a zero embedding silently; here it has to be asked for)."""
    if arcface_embedding is None:
        tokens = torch.zeros((1, models.face_encoder.num_tokens, clip.shape[-1]))
    else:
        tokens = C.encode_face_tokens(models.face_encoder, arcface_embedding, clip).float().cpu()
        require_finite(tokens, "The face encoder", next(models.face_encoder.parameters()).dtype)
    if recorder is not None:
        recorder["face_encoder_out"] = tokens
    return tokens


@torch.no_grad()
def reference_latent(models: StableAnimatorModels, reference: np.ndarray | torch.Tensor,
                     settings: ConditioningSettings, seed: int, recorder: Optional[dict] = None) -> torch.Tensor:
    """VAE posterior mode of the noise-augmented reference at the generation size, ``[1, 4, h, w]``."""
    C.check_generation_size(settings.width, settings.height)
    image = C.vae_input(C.to_uint8_rgb(reference), settings.width, settings.height)
    noise = reference_noise(seed, settings.width, settings.height)
    augmented, latent = C.encode_reference_latent(models.vae, image, noise, settings.noise_aug_strength)
    if recorder is not None:
        recorder["vae_encoder_input"] = augmented.cpu()
    return require_finite(latent.float().cpu(), "VAE encoding of the reference", torch.float32)


def build_conditioning(models: StableAnimatorModels, reference: np.ndarray | torch.Tensor,
                       arcface_embedding: Optional[np.ndarray | torch.Tensor],
                       pose_frames: Iterable[np.ndarray] | torch.Tensor, settings: ConditioningSettings,
                       seed: int, recorder: Optional[dict] = None) -> C.Conditioning:
    clip = clip_embeds(models, reference, recorder)
    tokens = face_tokens(models, arcface_embedding, clip, recorder)
    latent = reference_latent(models, reference, settings, seed, recorder)
    return assemble_conditioning(clip, tokens, latent, pose_frames, settings)


def assemble_conditioning(clip: torch.Tensor, tokens: torch.Tensor, latent: torch.Tensor,
                          pose_frames: Iterable[np.ndarray] | torch.Tensor,
                          settings: ConditioningSettings) -> C.Conditioning:
    """Skeleton frames (any size; resized to the generation size) + the encoded reference -> Conditioning.

    ``pose_frames`` may be a generator (the command line streams skeletons) or a ComfyUI IMAGE batch ``[F, H, W, 3]``;
    frames are packed one at a time (see :func:`conditioning.pose_tensor`). ``settings`` were checked when made."""
    frames = iter(pose_frames)
    first = next(frames, None)
    if first is None:
        raise InputError("no skeleton frames were given")
    leading = 1 if settings.first_frame_fix else 0
    poses = C.pose_tensor(itertools.chain([first] * (1 + leading), frames), settings.width, settings.height)
    ids = C.added_time_ids(settings.fps, settings.motion_bucket_id, settings.noise_aug_strength)
    return C.Conditioning(clip, tokens, latent, ids, poses, settings.identity, settings.pose, leading)


def drop_leading_frames(latents: torch.Tensor, count: int) -> torch.Tensor:
    """``[1, F, ...]`` latents without the first ``count`` frames (the first-frame fix's extra frame)."""
    if count and latents.shape[1] <= count:
        raise ValueError(f"cannot drop {count} leading frame(s) from {latents.shape[1]}")
    return latents[:, count:]


def run_sampler(models: StableAnimatorModels, cond: C.Conditioning, settings: SamplerSettings,
                refiner: Optional[StepHook] = None, callbacks: SamplerCallbacks = SamplerCallbacks(),
                recorder: Optional[dict] = None, device: Optional[torch.device | str] = None,
                split: Optional[WorkSplit] = None) -> torch.Tensor:
    height, width = cond.size_hw
    noise = latent_noise(settings.seed, width, height, cond.num_frames, settings.tile_size)
    latents = sample(SamplerModels(models.unet, models.pose_net), cond, settings, noise,
                     device=device or models.device, refiner=refiner, callbacks=callbacks, recorder=recorder,
                     schedule_config=models.scheduler_config, split=split)
    return require_finite(latents, "Sampling (the UNet)", models.dtype)


@dataclass
class AnimationResult:
    latents: torch.Tensor  # [1, F, 4, h, w]
    frames: torch.Tensor  # [F, H, W, 3] float 0..1
    extras: dict = field(default_factory=dict)


def animate(models: StableAnimatorModels, reference: np.ndarray | torch.Tensor,
            arcface_embedding: Optional[np.ndarray | torch.Tensor], pose_frames: Sequence[np.ndarray] | torch.Tensor,
            cond_settings: ConditioningSettings, sampler_settings: SamplerSettings, decode_chunk_size: int = 4,
            refiner: Optional[StepHook] = None, callbacks: SamplerCallbacks = SamplerCallbacks(),
            recorder: Optional[dict] = None) -> AnimationResult:
    cond = build_conditioning(models, reference, arcface_embedding, pose_frames, cond_settings,
                              sampler_settings.seed, recorder)
    latents = drop_leading_frames(run_sampler(models, cond, sampler_settings, refiner, callbacks, recorder),
                                  cond.leading_frames)
    frames = decode_latents(models.vae, latents, decode_chunk_size)
    if recorder is not None:
        recorder["final_latents"] = latents.float().cpu()
        recorder["frames_float"] = frames
        recorder["frames_uint8"] = (frames * 255).round()
    return AnimationResult(latents.float().cpu(), frames)
