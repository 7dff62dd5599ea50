"""Latents -> frames with SVD's temporal VAE decoder, a chunk of frames at a time.

The temporal decoder mixes frames inside a chunk (``decode_chunk_size``), so the chunk size is part of the
result, not only a memory knob; the official default is 4.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Optional

import torch

from ..models.acceleration import choose_decode_chunk_size, free_memory_bytes
from ..numerics import require_finite
from ..errors import InputError

SVD_SCALING_FACTOR = 0.18215
VAE_DOWNSCALE = 8  # SVD's VAE: latent pixel -> 8x8 image pixels


def vae_scaling_factor(vae: torch.nn.Module) -> float:
    config = getattr(vae, "config", None)
    return float(getattr(config, "scaling_factor", SVD_SCALING_FACTOR) if config is not None else SVD_SCALING_FACTOR)


def to_vae_latents(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Sampler-space latents (scaled by the VAE's scaling factor) -> the VAE's own latents, ComfyUI's LATENT
    convention (what core VAEDecode expects and core samplers return)."""
    # the official code multiplies by the reciprocal rather than dividing; kept for bit-faithfulness
    return latents * (1 / vae_scaling_factor(vae))


def decode_latents_to_pixels(vae: torch.nn.Module, latents: torch.Tensor, decode_chunk_size: int = 4,
                             on_chunk: Optional[Callable[[int, int], None]] = None,
                             free_memory: Optional[Callable[[], int]] = None,
                             dtype: Optional[torch.dtype] = None, scaled: bool = True) -> torch.Tensor:
    """``[1, F, 4, h, w]`` latents -> ``[F, 3, H, W]`` decoder output in about [-1, 1] (float32, on CPU).

    Works with or without autograd (HJB decodes with gradients); ``on_chunk(done, total)`` reports progress.
    ``decode_chunk_size=0`` picks the chunk from the free memory (``free_memory()`` in bytes, by default the
    device's; see :func:`acceleration.choose_decode_chunk_size`). ``dtype`` other than the VAE's decodes with a
    copy of the VAE in that dtype (the official basic script's fp16 decode), leaving the loaded VAE as it is.
    ``scaled=False``: the latents are already the VAE's own (:func:`to_vae_latents`, ComfyUI's LATENT convention).
    """
    if latents.ndim != 5 or latents.shape[0] * latents.shape[1] == 0:
        raise InputError(f"there are no latent frames to decode (latent shape {tuple(latents.shape)}); connect the "
                         f"sampler's output, made from at least one skeleton frame")
    if dtype is not None and dtype != next(vae.parameters()).dtype:
        vae = copy.deepcopy(vae).to(dtype)
    p = next(vae.parameters())
    if decode_chunk_size == 0:
        decode_chunk_size = auto_decode_chunk_size(latents, p.device, p.dtype, free_memory)
    if decode_chunk_size < 1:
        raise ValueError("decode_chunk_size must be at least 1 (or 0 for automatic)")
    return torch.cat(list(_decode_chunks(vae, latents, decode_chunk_size, on_chunk, scaled)))


def _decode_chunks(vae: torch.nn.Module, latents: torch.Tensor, decode_chunk_size: int,
                   on_chunk: Optional[Callable[[int, int], None]], scaled: bool = True) -> Iterator[torch.Tensor]:
    p = next(vae.parameters())
    flat = latents.flatten(0, 1)
    n = flat.shape[0]
    total = (n + decode_chunk_size - 1) // decode_chunk_size
    for k, start in enumerate(range(0, n, decode_chunk_size)):
        part = flat[start : start + decode_chunk_size]
        part = (to_vae_latents(vae, part) if scaled else part).to(p.device, p.dtype)
        yield vae.decode(part, num_frames=part.shape[0]).sample.float().cpu()
        if on_chunk is not None:
            on_chunk(k + 1, total)


@torch.no_grad()
def iter_decoded_frames(vae: torch.nn.Module, latents: torch.Tensor, decode_chunk_size: int = 4,
                        on_chunk: Optional[Callable[[int, int], None]] = None,
                        dtype: Optional[torch.dtype] = None, scaled: bool = True) -> Iterator[torch.Tensor]:
    """Like :func:`decode_latents`, one chunk ``[n, H, W, 3]`` (0..1) at a time, so a long video can be written
    as it is decoded instead of held whole in memory. Same chunks, same values, same refusal of non-finite values
    (per chunk: a writer stops before the chunk and removes its partial file)."""
    if latents.ndim != 5 or latents.shape[0] * latents.shape[1] == 0:
        raise InputError(f"there are no latent frames to decode (latent shape {tuple(latents.shape)})")
    require_finite(latents, "The latents given to the VAE decoder", latents.dtype,
                   advice="They come from the sampler: run it in another precision (bf16 or fp32)")
    if dtype is not None and dtype != next(vae.parameters()).dtype:
        vae = copy.deepcopy(vae).to(dtype)
    if decode_chunk_size < 1:
        raise ValueError("decode_chunk_size must be at least 1")
    decode_dtype = next(vae.parameters()).dtype
    for pixels in _decode_chunks(vae, latents, decode_chunk_size, on_chunk, scaled):
        yield pixels_to_frames(require_finite(pixels, "VAE decoding", decode_dtype))


def auto_decode_chunk_size(latents: torch.Tensor, device: torch.device, dtype: torch.dtype,
                           free_memory: Optional[Callable[[], int]] = None) -> int:
    free = free_memory() if free_memory is not None else free_memory_bytes(device)
    h, w = latents.shape[-2:]
    chunk = choose_decode_chunk_size(free, h * VAE_DOWNSCALE, w * VAE_DOWNSCALE, dtype)
    return min(chunk, max(1, latents.shape[0] * latents.shape[1]))


def pixels_to_frames(pixels: torch.Tensor) -> torch.Tensor:
    """``[F, 3, H, W]`` in [-1, 1] -> ComfyUI IMAGE ``[F, H, W, 3]`` float in [0, 1]."""
    return (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


@torch.no_grad()
def decode_latents(vae: torch.nn.Module, latents: torch.Tensor, decode_chunk_size: int = 4,
                   on_chunk: Optional[Callable[[int, int], None]] = None,
                   free_memory: Optional[Callable[[], int]] = None,
                   dtype: Optional[torch.dtype] = None, scaled: bool = True) -> torch.Tensor:
    """``[1, F, 4, h, w]`` -> ``[F, H, W, 3]`` frames in [0, 1] (float32, CPU); chunk 0 = automatic.

    Non-finite latents or decoder outputs raise :class:`numerics.NonFiniteError` (clamping would hide them as
    black frames)."""
    require_finite(latents, "The latents given to the VAE decoder", latents.dtype,
                   advice="They come from the sampler: run it in another precision (bf16 or fp32)")
    pixels = decode_latents_to_pixels(vae, latents, decode_chunk_size, on_chunk, free_memory, dtype, scaled)
    return pixels_to_frames(require_finite(pixels, "VAE decoding", dtype or next(vae.parameters()).dtype))
