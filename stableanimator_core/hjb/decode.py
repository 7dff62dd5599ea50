"""Differentiable decoding with the SVD temporal VAE decoder, with a choice of gradient checkpointing.

The forward here walks diffusers' ``TemporalDecoder`` (conv_in, mid block, up blocks, norm/act/conv_out, the
temporal ``time_conv_out``) so that checkpointing can be chosen per call without touching the shared VAE's
flags. It computes exactly what ``vae.decode(z, num_frames=n).sample`` computes (tested).

Checkpointing (``torch.utils.checkpoint``, non-reentrant):
  * ``"none"``   - plain autograd;
  * ``"blocks"`` - the mid block and each up block, as the official ``RefinedAutoencoderKLTemporalDecoder`` with
    ``--gradient_checkpointing`` (what ``inference_op.py`` runs);
  * ``"layers"`` - every resnet, attention and upsampler, and the output head: the recomputation peak drops from
    a whole full-resolution up block (three resnets) to one resnet, and the head's three full-resolution tensors
    are not kept.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

Checkpointing = Literal["none", "blocks", "layers"]


def _ckpt(fn: Callable[..., torch.Tensor], *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
    return checkpoint(fn, *args, use_reentrant=False, **kwargs)


def _run_mid_block(block: nn.Module, h: torch.Tensor, indicator: torch.Tensor, fine: bool) -> torch.Tensor:
    # MidBlockTemporalDecoder: resnet, then (attention, resnet) pairs
    call = _ckpt if fine else (lambda f, *a, **k: f(*a, **k))
    h = call(block.resnets[0], h, image_only_indicator=indicator)
    for resnet, attn in zip(block.resnets[1:], block.attentions):
        h = call(attn, h)
        h = call(resnet, h, image_only_indicator=indicator)
    return h


def _run_up_block(block: nn.Module, h: torch.Tensor, indicator: torch.Tensor, fine: bool) -> torch.Tensor:
    call = _ckpt if fine else (lambda f, *a, **k: f(*a, **k))
    for resnet in block.resnets:
        h = call(resnet, h, image_only_indicator=indicator)
    for upsampler in block.upsamplers or ():
        h = call(upsampler, h)
    return h


def _head(decoder: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return decoder.conv_out(decoder.conv_act(decoder.conv_norm_out(h)))


def decode_latents(
    decoder: nn.Module, latents: torch.Tensor, num_frames: int, checkpointing: Checkpointing = "none"
) -> torch.Tensor:
    """Decode ``[num_frames, C, h, w]`` VAE latents (already divided by the scaling factor) as ONE temporal chunk.

    Returns ``[num_frames, 3, 8h, 8w]`` in roughly [-1, 1]; differentiable with respect to ``latents``.
    """
    if checkpointing not in ("none", "blocks", "layers"):
        raise ValueError(f"unknown checkpointing {checkpointing!r}")
    indicator = torch.zeros(1, num_frames, dtype=latents.dtype, device=latents.device)
    h = decoder.conv_in(latents)
    upscale_dtype = next(iter(decoder.up_blocks.parameters())).dtype
    if checkpointing == "blocks":
        h = _ckpt(decoder.mid_block, h, indicator)
        h = h.to(upscale_dtype)
        for up_block in decoder.up_blocks:
            h = _ckpt(up_block, h, indicator)
        h = _head(decoder, h)
    else:
        fine = checkpointing == "layers"
        h = _run_mid_block(decoder.mid_block, h, indicator, fine).to(upscale_dtype)
        for up_block in decoder.up_blocks:
            h = _run_up_block(up_block, h, indicator, fine)
        h = _ckpt(_head, decoder, h) if fine else _head(decoder, h)
    n, c, height, width = h.shape
    # time_conv_out mixes neighbouring frames of this chunk: [1, C, F, H, W]
    h = h.reshape(1, n, c, height, width).permute(0, 2, 1, 3, 4)
    h = decoder.time_conv_out(h)
    return h.permute(0, 2, 1, 3, 4).reshape(n, c, height, width)


def to_face_range(frames: torch.Tensor) -> torch.Tensor:
    """Decoder output -> the [-1, 1] images the official HJB crops: ``((x/2+0.5).clamp(0,1)*255).clamp(0,255)``
    then ``/255, -0.5, /0.5``, in that float order (the clamp zeroes the gradient of saturated pixels)."""
    img = ((frames / 2 + 0.5).clamp(0, 1).float() * 255).clamp(0, 255)
    return (img / 255 - 0.5) / 0.5


def vae_downscale(vae: nn.Module) -> int:
    """Pixels per latent pixel: 2^(number of decoder up-samplings), 8 for SVD."""
    return 2 ** sum(1 for b in vae.decoder.up_blocks if b.upsamplers is not None)


def conv_receptive_radius(decoder: nn.Module) -> int:
    """Radius, in latent pixels, of the decoder's convolutional receptive field (the attention is global and the
    GroupNorm statistics are per frame, so neither has a finite radius: that part of fast mode is approximate).

    Every 3x3 convolution in series adds one pixel at its own resolution; the SVD-xt decoder sums to 17.25
    latent pixels (conv_in 1, mid block 4, up blocks 6 + 3 + 1.5 + 0.75, three upsampling convs 0.875,
    conv_out 0.125), so 18.
    """
    def conv_r(conv: nn.Module) -> float:
        k, d = conv.kernel_size[-1], conv.dilation[-1]
        return (k - 1) // 2 * d

    def resnet_r(resnet: nn.Module) -> float:
        # the temporal half of a SpatioTemporalResBlock uses (3,1,1) kernels: no spatial reach
        block = resnet.spatial_res_block
        return conv_r(block.conv1) + conv_r(block.conv2)

    radius, scale = conv_r(decoder.conv_in), 1.0
    radius += sum(resnet_r(r) for r in decoder.mid_block.resnets)
    for up_block in decoder.up_blocks:
        radius += sum(resnet_r(r) for r in up_block.resnets) / scale
        for upsampler in up_block.upsamplers or ():
            scale *= 2
            radius += conv_r(upsampler.conv) / scale
    radius += conv_r(decoder.conv_out) / scale
    return int(math.ceil(radius))
