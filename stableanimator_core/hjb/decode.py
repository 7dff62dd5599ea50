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
from typing import Callable, Literal, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

Checkpointing = Literal["none", "blocks", "layers"]


def _ckpt(fn: Callable[..., torch.Tensor], *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
    return checkpoint(fn, *args, use_reentrant=False, **kwargs)


OnLayer = Optional[Callable[[], None]]


class _Layers:
    """Runs decoder layers one at a time, each checkpointed or not, with an optional ``on_layer()`` between them.

    ``on_layer`` runs before every layer's forward (also when checkpointing recomputes it during backward) and,
    through a gradient hook on the layer's output, when the backward pass reaches that layer; so no stretch of the
    forward, the recomputation or the backward longer than one layer goes without a call.
    """

    def __init__(self, checkpointed: bool, on_layer: OnLayer):
        self.checkpointed = checkpointed
        self.on_layer = on_layer

    def __call__(self, fn: Callable[..., torch.Tensor], h: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        if self.on_layer is None:
            return _ckpt(fn, h, **kwargs) if self.checkpointed else fn(h, **kwargs)
        out = _ckpt(self._checked, fn, h, **kwargs) if self.checkpointed else self._checked(fn, h, **kwargs)
        if out.requires_grad:
            out.register_hook(self._on_grad)
        return out

    def _checked(self, fn: Callable[..., torch.Tensor], h: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        self.on_layer()
        return fn(h, **kwargs)

    def _on_grad(self, grad: torch.Tensor) -> None:
        self.on_layer()  # returns None: the gradient is unchanged


def _run_mid_block(block: nn.Module, h: torch.Tensor, indicator: torch.Tensor, call: _Layers) -> torch.Tensor:
    # MidBlockTemporalDecoder: resnet, then (attention, resnet) pairs
    h = call(block.resnets[0], h, image_only_indicator=indicator)
    for resnet, attn in zip(block.resnets[1:], block.attentions):
        h = call(attn, h)
        h = call(resnet, h, image_only_indicator=indicator)
    return h


def _run_up_block(block: nn.Module, h: torch.Tensor, indicator: torch.Tensor, call: _Layers) -> torch.Tensor:
    for resnet in block.resnets:
        h = call(resnet, h, image_only_indicator=indicator)
    for upsampler in block.upsamplers or ():
        h = call(upsampler, h)
    return h


def _head(decoder: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return decoder.conv_out(decoder.conv_act(decoder.conv_norm_out(h)))


def decode_chunk_differentiable(
    decoder: nn.Module, latents: torch.Tensor, num_frames: int, checkpointing: Checkpointing = "none",
    on_layer: OnLayer = None,
) -> torch.Tensor:
    """Decode ``[num_frames, C, h, w]`` VAE latents (already divided by the scaling factor) as ONE temporal chunk.

    Returns ``[num_frames, 3, 8h, 8w]`` in roughly [-1, 1]; differentiable with respect to ``latents``.
    ``on_layer()``, if given, is called between the decoder's layers in the forward pass, in the recomputation
    and in the backward pass (e.g. to raise on a user interrupt); it does not change the result.
    """
    if checkpointing not in ("none", "blocks", "layers"):
        raise ValueError(f"unknown checkpointing {checkpointing!r}")
    indicator = torch.zeros(1, num_frames, dtype=latents.dtype, device=latents.device)
    layer = _Layers(checkpointed=checkpointing == "layers", on_layer=on_layer)
    block = _Layers(checkpointed=checkpointing == "blocks", on_layer=on_layer)
    h = decoder.conv_in(latents)
    upscale_dtype = next(iter(decoder.up_blocks.parameters())).dtype
    # "blocks" checkpoints a whole block as the official code does; its layers run inside, one at a time.
    h = block(lambda x: _run_mid_block(decoder.mid_block, x, indicator, layer), h).to(upscale_dtype)
    for up_block in decoder.up_blocks:
        h = block(lambda x, b=up_block: _run_up_block(b, x, indicator, layer), h)
    h = layer(lambda x: _head(decoder, x), h)
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
