"""Everything the UNet is conditioned on, computed once per video.

* CLIP image embedding of the reference (SVD's anti-aliased squash to 224x224, CLIP normalisation);
* face tokens: FusionFaceId(ArcFace embedding, CLIP embedding);
* the reference latent: VAE posterior mode of the noise-augmented reference at the generation size (unscaled);
* micro-conditioning ``[fps - 1, motion_bucket_id, noise_aug_strength]``;
* skeleton frames resized to the generation size, kept as compressed uint8 (see :mod:`frame_store`) and turned
  into [-1, 1] floats a window at a time, so a long video's skeletons do not hold gigabytes.

The reference is squashed to the target aspect ratio with no crop, as the official pipeline does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..sampling.controls import OFFICIAL, TermWindow
from ..errors import InputError
from .frame_store import PackedFrames

log = logging.getLogger(__name__)

def skeleton_pixels(frames: PackedFrames | torch.Tensor, index: slice | Sequence[int] = slice(None)) -> torch.Tensor:
    """Stored skeleton frames (uint8, or already [-1, 1] floats) -> ``[n, 3, H, W]`` float32 in [-1, 1]."""
    picked = frames[index]
    if picked.dtype == torch.uint8:
        return picked.float() / 127.5 - 1
    return picked.float()


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Conditioning:
    """Per-video conditioning; tensors live on CPU until the sampler moves them."""

    clip_embeds: torch.Tensor  # [1, 1, D]
    face_tokens: torch.Tensor  # [1, num_tokens, D]
    image_latents: torch.Tensor  # [1, 4, h, w], unscaled posterior mode
    added_time_ids: torch.Tensor  # [1, 3]
    pose_frames: PackedFrames | torch.Tensor  # [F, 3, H, W] uint8 skeleton pixels at the generation size
    identity: TermWindow = OFFICIAL  # ID adapter strength and step range
    pose: TermWindow = OFFICIAL  # PoseNet feature strength and step range
    leading_frames: int = 0  # first frames generated only to be dropped (the first-frame fix)

    @property
    def num_frames(self) -> int:
        """Frames the sampler generates (``leading_frames`` of them are dropped from the video)."""
        return int(self.pose_frames.shape[0])

    def pose_pixels(self, index: slice | Sequence[int] = slice(None)) -> torch.Tensor:
        """Skeleton frames ``[n, 3, H, W]`` float32 in [-1, 1], the PoseNet input (same float ops as official)."""
        return skeleton_pixels(self.pose_frames, index)

    @property
    def output_frames(self) -> int:
        return self.num_frames - self.leading_frames

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.pose_frames.shape[-2]), int(self.pose_frames.shape[-1])

    def encoder_hidden_states(self) -> torch.Tensor:
        """``[2, 1 + tokens, D]``: unconditional (all zeros, as official) then conditional."""
        cond = torch.cat([self.clip_embeds, self.face_tokens.to(self.clip_embeds.dtype)], dim=1)
        return torch.cat([torch.zeros_like(cond), cond])


def to_uint8_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB from a uint8 array or a float image in 0..1 (ComfyUI IMAGE frame)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype.is_floating_point:
            # a block of rows at a time: a large float photo would otherwise need three float copies at once
            out = torch.empty(image.shape, dtype=torch.uint8)
            for r in range(0, image.shape[0], 512):
                out[r : r + 512] = (image[r : r + 512].float().clamp(0, 1) * 255).round().to(torch.uint8)
            image = out
        image = image.numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.dtype.kind == "f":
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        else:
            image = image.astype(np.uint8)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def _remaining_sigma(source: int, reduced: int, target: int) -> float:
    k = source / reduced
    official = max((source / target - 1.0) / 2.0, 0.001) / k  # in reduced pixels
    box_variance = (1.0 - 1.0 / (k * k)) / 12.0  # what the k x k box averages contributed
    return max(math.sqrt(max(official * official - box_variance, 0.0)), 0.001)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = torch.exp(-x.pow(2.0) / (2 * torch.tensor(sigma, dtype=torch.float32).pow(2.0)))
    return g / g.sum()


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Depthwise 1-D convolution with reflect padding along H (axis=2) or W (axis=3)."""
    k = kernel.numel()
    front = (k - 1) // 2
    rear = (k - 1) - front
    c = x.shape[1]
    if axis == 3:
        x = F.pad(x, (front, rear, 0, 0), mode="reflect")
        weight = kernel.view(1, 1, 1, k).expand(c, 1, 1, k)
    else:
        x = F.pad(x, (0, 0, front, rear), mode="reflect")
        weight = kernel.view(1, 1, k, 1).expand(c, 1, k, 1)
    return F.conv2d(x, weight.to(x.dtype), groups=c)


def resize_with_antialiasing(x: torch.Tensor, size: tuple[int, int],
                             source_hw: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """SVD's CLIP resize: separable Gaussian blur (sigma from the scale factor) then bicubic, align_corners.

    ``source_hw``: the size ``x`` had before :func:`prereduce` shrank it; the blur then keeps the official width
    measured in source pixels (less what the box averages already blurred)."""
    h, w = x.shape[-2:]
    sig_h = max((h / size[0] - 1.0) / 2.0, 0.001)
    sig_w = max((w / size[1] - 1.0) / 2.0, 0.001)
    if source_hw is not None and tuple(source_hw) != (h, w):
        sig_h = _remaining_sigma(source_hw[0], h, size[0])
        sig_w = _remaining_sigma(source_hw[1], w, size[1])
    ks_h, ks_w = int(max(2.0 * 2 * sig_h, 3)), int(max(2.0 * 2 * sig_w, 3))
    ks_h += (ks_h % 2 == 0)
    ks_w += (ks_w % 2 == 0)
    x = _blur_axis(x, _gaussian_kernel(ks_w, sig_w), axis=3)
    x = _blur_axis(x, _gaussian_kernel(ks_h, sig_h), axis=2)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


# Above this many pixels on the long side the reference is first reduced by whole factors (exact box averages,
# in uint8) before SVD's float32 blur: an 8000x8000 photo otherwise costs ~12 GB and minutes. At usual sizes the
# official computation runs unchanged. The blur after the reduction is still SVD's, for the remaining factor.
CLIP_PREREDUCE_ABOVE = 2048


def prereduce(reference: np.ndarray, max_side: int = CLIP_PREREDUCE_ABOVE) -> np.ndarray:
    """Halve a very large uint8 image (2x2 box averages) until its long side is at most ``max_side``."""
    image = reference
    while max(image.shape[:2]) > max_side:
        image = np.asarray(PIL.Image.fromarray(image).reduce(2))
    return image


def clip_pixels(reference: np.ndarray, max_side: int = CLIP_PREREDUCE_ABOVE) -> torch.Tensor:
    """``[1, 3, 224, 224]`` CLIP input from an ``[H, W, 3]`` uint8 RGB reference."""
    source_hw = reference.shape[:2]
    reference = prereduce(reference, max_side)
    x = torch.from_numpy(reference.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    x = resize_with_antialiasing(x * 2.0 - 1.0, (224, 224), source_hw)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def encode_clip(image_encoder: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP ViT ``image_embeds`` (projected pooled output) as ``[1, 1, D]``."""
    p = next(image_encoder.parameters())
    return image_encoder(pixels.to(p.device, p.dtype)).image_embeds.unsqueeze(1)


def resize_rgb(image: np.ndarray, width: int, height: int, resample: int = PIL.Image.LANCZOS) -> np.ndarray:
    return np.asarray(PIL.Image.fromarray(image).resize((width, height), resample=resample))


def vae_input(reference: np.ndarray, width: int, height: int) -> torch.Tensor:
    """``[1, 3, H, W]`` in [-1, 1]: the reference resized (Lanczos, as diffusers' VaeImageProcessor) to the target."""
    x = torch.from_numpy(resize_rgb(reference, width, height).astype(np.float32) / 255.0)
    return (x.permute(2, 0, 1)[None] * 2.0 - 1.0)


@torch.no_grad()
def encode_reference_latent(vae: torch.nn.Module, image: torch.Tensor, noise: torch.Tensor,
                            noise_aug_strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (noise-augmented VAE input, latent). The VAE encodes in float32 (SVD's ``force_upcast``)."""
    augmented = image + noise_aug_strength * noise
    p = next(vae.parameters())
    if p.dtype != torch.float32:
        raise ValueError("encode the reference with a float32 VAE (SVD's VAE overflows in fp16)")
    latent = vae.encode(augmented.to(p.device)).latent_dist.mode()
    return augmented, latent


def added_time_ids(fps: int, motion_bucket_id: float, noise_aug_strength: float) -> torch.Tensor:
    """SVD micro-conditioning; SVD was trained on ``fps - 1``."""
    return torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], dtype=torch.float32)


@torch.no_grad()
def encode_face_tokens(face_encoder: torch.nn.Module, arcface_embedding: np.ndarray | torch.Tensor,
                       clip_embeds: torch.Tensor) -> torch.Tensor:
    """``[1, 4, D]`` face tokens from the raw (un-normalised) 512-d ArcFace embedding."""
    p = next(face_encoder.parameters())
    emb = torch.as_tensor(np.asarray(arcface_embedding, dtype=np.float32)).reshape(1, -1)
    return face_encoder(emb.to(p.device, p.dtype), clip_embeds.to(p.device, p.dtype))


def pose_tensor(frames: Iterable[np.ndarray | torch.Tensor], width: int, height: int) -> PackedFrames:
    """Skeleton images (any size, uint8 or float 0..1, one at a time) -> packed ``[F, 3, H, W]`` uint8 at the
    generation size, resized (bicubic, PIL's default) when needed. Only one frame is ever unpacked."""
    store = PackedFrames(3, height, width)
    for f in frames:
        f = to_uint8_rgb(f)
        if f.shape[:2] != (height, width):
            f = resize_rgb(f, width, height, resample=PIL.Image.BICUBIC)
        store.append(np.ascontiguousarray(f.transpose(2, 0, 1)))
    return store


def round_to_64(value: int, what: str) -> int:
    """SVD's VAE and UNet need multiples of 64; other sizes are rounded, with a warning."""
    rounded = max(64, int(round(value / 64)) * 64)
    if rounded != value:
        log.warning("%s %d is not a multiple of 64 (SVD's VAE and UNet need that); using %d", what, value, rounded)
    return rounded


MIN_REFERENCE_SIDE = 32


def check_reference_image(image: np.ndarray | torch.Tensor) -> None:
    """A reference too small to see a person (or to resize with SVD's reflect-padded blur) is refused up front."""
    h, w = (image.shape[-3], image.shape[-2]) if image.ndim >= 3 else image.shape[:2]
    if min(h, w) < MIN_REFERENCE_SIDE:
        raise InputError(f"the reference image is {w}x{h} pixels; use a photo at least {MIN_REFERENCE_SIDE} pixels "
                         f"on each side (ideally about the output size) showing the person")


def check_generation_size(width: int, height: int) -> None:
    if width % 64 or height % 64 or width < 64 or height < 64:
        raise ValueError(f"width and height must be positive multiples of 64, got {width}x{height}")
