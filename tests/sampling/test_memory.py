"""What the GPU stages ask ComfyUI's memory manager for: one window's UNet call at the real size, CFG-aware."""

from __future__ import annotations

import torch

from stableanimator_core.models.unet import UNetConfig
from stableanimator_core.sampling.memory import (
    decode_memory_bytes, sampling_memory_bytes, unet_call_activation_bytes,
)

SVD = UNetConfig()


def test_unet_call_scales_with_window_pixels_batch_and_itemsize():
    base = unet_call_activation_bytes(SVD, 64, 64, 16, 1, torch.float16)
    assert unet_call_activation_bytes(SVD, 64, 64, 16, 2, torch.float16) == 2 * base  # batched CFG
    assert unet_call_activation_bytes(SVD, 64, 64, 8, 1, torch.float16) == base // 2
    assert unet_call_activation_bytes(SVD, 64, 64, 16, 1, torch.float32) == 2 * base
    assert unet_call_activation_bytes(SVD, 128, 72, 16, 1, torch.float16) == 2.25 * base  # 576x1024 vs 512x512
    # 512x512, 16 frames, fp16: the skips (1620 channels per latent pixel) and the first level's temporaries
    assert base == int((1620 + 16 * 320) * 64 * 64 * 16 * 2 * 1.5)


def test_sampling_need_depends_on_the_window_not_the_video_length_for_the_unet():
    short = sampling_memory_bytes(SVD, 512, 512, 16, 16, True, torch.float16, pose_cached=False)
    long = sampling_memory_bytes(SVD, 512, 512, 300, 16, True, torch.float16, pose_cached=False)
    split = sampling_memory_bytes(SVD, 512, 512, 16, 16, False, torch.float16, pose_cached=False)
    call = unet_call_activation_bytes(SVD, 64, 64, 16, 2, torch.float16)
    assert long - short == 4 * (300 - 16) * 4 * 64 * 64 * 4  # only the per-frame float32 buffers grow
    assert short - split == call // 2
    assert 2 << 30 < short < 4 << 30
