"""How much accelerator memory a stage needs beyond its weights, so the nodes can ask ComfyUI's memory manager
for it up front (it then evicts other models first instead of the stage running out of memory halfway).

The UNet figure is an analytic count of the live activations of one window's UNet call (the largest moment of
a denoising step), times a margin for the allocator; ``benchmarks.gpu_check`` prints it next to the measured
CUDA peak of the same call (``unet_half_*``), which is how it is kept honest.
"""

from __future__ import annotations

import torch

from ..models.acceleration import DECODE_FIXED_BYTES, decode_bytes_per_frame
from ..models.unet import UNetConfig

# Live tensors at the first level of a transformer block besides the skips, in multiples of its width: the
# residual stream, the norm output, q/k/v, the attention output and the GEGLU's doubled 4x inner projection.
_TRANSIENT_WIDTHS = 16
# allocator rounding, fragmentation and the kernels' workspaces
_MARGIN = 1.5
_FIXED_BYTES = 256 << 20


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def unet_call_activation_bytes(config: UNetConfig, latent_h: int, latent_w: int, frames: int, batch: int,
                               dtype: torch.dtype) -> int:
    """Peak activation bytes of one UNet forward without autograd: the skip tensors the up path keeps, plus
    the widest block's temporaries at full latent resolution."""
    pixels = latent_h * latent_w
    channels = list(config.block_out_channels)
    layers = config.per_block("layers_per_block")
    skips = channels[0]  # conv_in's output
    for level, (c, n) in enumerate(zip(channels, layers)):
        skips += n * c / 4**level  # each level halves both sides
        if level < len(channels) - 1:
            skips += c / 4 ** (level + 1)  # the downsampler's output, kept as a skip at the next size
    elements = (skips + _TRANSIENT_WIDTHS * channels[0]) * pixels * frames * batch
    return int(elements * _itemsize(dtype) * _MARGIN)


def sampling_memory_bytes(config: UNetConfig, width: int, height: int, num_frames: int, tile: int,
                          batch_cfg: bool, dtype: torch.dtype, pose_cached: bool = True) -> int:
    """Memory the sampler needs on the device beyond the UNet and PoseNet weights.

    One window's UNet call (batch 2 with batched CFG, else 1), the float32 latents and their guided
    prediction buffers for every frame, and the PoseNet features of every frame when they are cached.
    """
    h, w = height // 8, width // 8
    call = unet_call_activation_bytes(config, h, w, min(tile, num_frames), 2 if batch_cfg else 1, dtype)
    latents = 4 * num_frames * config.out_channels * h * w * 4  # latents, x0, 2-sample prediction sum
    pose = num_frames * config.block_out_channels[0] * h * w * _itemsize(dtype) if pose_cached else 0
    return call + latents + pose + _FIXED_BYTES


def decode_memory_bytes(width: int, height: int, chunk: int, dtype: torch.dtype = torch.float32) -> int:
    """The temporal VAE decoder's need for ``chunk`` frames (measured constant, see models.acceleration)."""
    return max(1, chunk) * decode_bytes_per_frame(height, width, dtype) + DECODE_FIXED_BYTES


def encode_memory_bytes(width: int, height: int) -> int:
    """Encoding the reference (VAE encoder at the generation size, fp32; CLIP at 224x224): bounded by one
    decoded frame's figure, which is the larger network at the same size."""
    return decode_memory_bytes(width, height, 1)
