"""Per-frame data at the generation size in compact form; large references downscaled in steps (issue 12, 3-4)."""

from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import torch

from stableanimator_core.pipeline import conditioning as C
from stableanimator_core.pipeline.frame_store import PackedFrames
from stableanimator_core.pipeline.memory_estimate import expected_ram_bytes, warn_if_long


def _skeleton_like(seed: int, h: int = 96, w: int = 80) -> np.ndarray:
    g = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    for _ in range(6):
        y, x = g.integers(0, h - 8), g.integers(0, w - 8)
        img[y : y + 8, x : x + 3] = g.integers(0, 255, 3)
    return img


def _official_pose_tensor(frames, width, height):
    """The previous float32 computation, kept here as the reference."""
    out = []
    for f in frames:
        if f.shape[:2] != (height, width):
            f = C.resize_rgb(f, width, height, resample=PIL.Image.BICUBIC)
        out.append(torch.from_numpy(f.astype(np.float32)))
    return (torch.stack(out) / 127.5 - 1).permute(0, 3, 1, 2).contiguous()


def test_packed_skeletons_give_the_same_posenet_input(fixture_inputs):
    frames = [_skeleton_like(i) for i in range(7)]
    packed = C.pose_tensor(iter(frames), 64, 128)  # a generator: frames arrive one at a time
    assert isinstance(packed, PackedFrames) and packed.shape == (7, 3, 128, 64)
    cond = C.Conditioning(torch.zeros(1, 1, 8), torch.zeros(1, 4, 8), torch.zeros(1, 4, 16, 8), torch.zeros(1, 3),
                          packed)
    expected = _official_pose_tensor(frames, 64, 128)
    assert torch.equal(cond.pose_pixels(), expected)
    assert torch.equal(cond.pose_pixels([0, 3, 6]), expected[[0, 3, 6]])


def test_packed_skeletons_are_much_smaller_than_uint8(fixture_inputs):
    frames = [_skeleton_like(i, 512, 512) for i in range(20)]
    packed = C.pose_tensor(frames, 512, 512)
    assert packed.nbytes * 20 < 20 * 3 * 512 * 512  # > 20x smaller than uint8 frames, 80x than float32


def test_comfy_image_batch_is_packed_frame_by_frame():
    batch = torch.stack([torch.from_numpy(_skeleton_like(i)).float() / 255 for i in range(3)])
    packed = C.pose_tensor(batch, 80, 96)
    assert torch.equal(packed.to_tensor().permute(0, 2, 3, 1), (batch * 255).round().to(torch.uint8))


def _photo(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(x / 37.0), 128 + 90 * np.cos(y / 53.0), (x + y) * 255.0 / (h + w)], -1)
    g = np.random.default_rng(0)
    return np.clip(img + g.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def test_usual_size_reference_keeps_the_official_clip_input():
    ref = _photo(1024, 768)
    official = _official_clip_pixels(ref)
    assert torch.equal(C.clip_pixels(ref), official)  # no pre-reduction at usual sizes: bit for bit


def test_stepwise_downscale_agrees_with_the_official_resize():
    ref = _photo(1600, 1200)
    official = _official_clip_pixels(ref)
    # one halving to 3.6x the CLIP size (an 8000 px photo reduced to 2000 px is 9x: closer still)
    stepwise = C.clip_pixels(ref, max_side=800)
    assert C.prereduce(ref, 800).shape == (800, 600, 3)
    diff = (stepwise - official).abs()
    # CLIP-normalised units (1 unit = ~0.27 of the 0..1 range): mean < 0.3 %, max < 1.6 % of the range
    assert diff.mean() < 0.01 and diff.max() < 0.06
    assert (C.clip_pixels(ref, max_side=800) - C.clip_pixels(C.prereduce(ref, 800))).abs().max() > 0  # compensated


def _official_clip_pixels(ref: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(ref.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    x = C.resize_with_antialiasing(x * 2.0 - 1.0, (224, 224))
    x = (x + 1.0) / 2.0
    mean = torch.tensor(C.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(C.CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def test_large_reference_is_reduced_before_the_float_blur():
    big = np.zeros((8000, 6000, 3), np.uint8)
    small = C.prereduce(big)
    assert max(small.shape[:2]) <= C.CLIP_PREREDUCE_ABOVE and small.shape == (2000, 1500, 3)


def test_long_video_warns_with_the_expected_ram(caplog):
    with caplog.at_level(logging.WARNING):
        warn_if_long(15000, 256, 256)
    gib = expected_ram_bytes(15000, 256, 256) / 2**30
    assert f"expect about {gib:.1f} GiB of RAM" in caplog.text and "15000 frames at 256x256" in caplog.text
    caplog.clear()
    warn_if_long(100, 256, 256)
    assert not caplog.text
