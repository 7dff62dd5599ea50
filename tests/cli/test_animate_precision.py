"""Half precision at the trained sizes, through the whole ``animate`` job (tiny random models, CPU).

The parity fixture is 64x128; at 512x512 and 576x1024 the ID adapter's statistics cover 16-36 times more
tokens, which is where a statistic formed in fp16 overflows (the bug: an all-black fp16 video). Each half
precision must give the fp32 video up to rounding. Measured (CPU, torch 2.13, these tiny models), relative L2
error of the decoded frames vs fp32: fp16 ~1e-3, bf16 ~1e-2; before the fix fp16 gave NaN latents (black).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stableanimator_core.cli.job import AnimateOptions, render_animation
from stableanimator_core.numerics import NonFiniteError

REPO = Path(__file__).resolve().parents[2]
SIZES = [(512, 512), (576, 1024)]  # (width, height), StableAnimator's training sizes
BOUNDS = {"fp16": 5e-3, "bf16": 4e-2}


def _render(models_dir, width: int, height: int, precision: str) -> torch.Tensor:
    opts = AnimateOptions(reference=REPO / "example_workflows/inputs/stableanimator_reference.png",
                          driving=REPO / "example_workflows/inputs/stableanimator_driving.mp4", out=REPO / "unused.mp4",
                          models=models_dir, width=width, height=height, steps=1, max_frames=2, tile_size=2,
                          tile_overlap=1, precision=precision, device="cpu")
    frames, _fps = render_animation(opts)
    return frames


@pytest.fixture(scope="module", params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def videos(request, tiny_models_dir):
    width, height = request.param
    return {p: _render(tiny_models_dir, width, height, p) for p in ("fp32", "fp16", "bf16")}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_gives_the_fp32_video(videos, precision):
    ref, frames = videos["fp32"], videos[precision]
    assert ref.std() > 0.05  # a real (noise) video, not a flat one
    assert torch.isfinite(frames).all()
    rel = float((frames - ref).norm() / ref.norm())
    assert rel < BOUNDS[precision], rel
    assert rel > 0  # it really ran in half precision


def test_non_finite_latents_stop_the_run(tiny_models_dir, monkeypatch):
    """A UNet that overflows (here: forced to return inf) ends in an error naming the stage and a precision."""
    from stableanimator_core.models.unet import StableAnimatorUNet

    forward = StableAnimatorUNet.forward

    def overflowing(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        return out.masked_fill(torch.zeros_like(out, dtype=torch.bool).index_fill_(-1, torch.tensor([0]), True),
                               float("inf"))

    monkeypatch.setattr(StableAnimatorUNet, "forward", overflowing)
    with pytest.raises(NonFiniteError, match=r"Sampling \(the UNet\).*in fp16.*Use precision bf16 instead"):
        _render(tiny_models_dir, 64, 64, "fp16")


def test_a_non_finite_decode_stops_the_streamed_video_and_leaves_no_file(tiny_models_dir, monkeypatch, tmp_path):
    """The command line decodes and writes a chunk at a time; a decoder that overflows (forced here to return
    NaN, as an fp16 VAE does at large sizes) must stop the run, not write a black mp4."""
    from diffusers import AutoencoderKLTemporalDecoder

    from stableanimator_core.cli.job import run_animation

    decode = AutoencoderKLTemporalDecoder.decode

    def overflowing(self, *args, **kwargs):
        out = decode(self, *args, **kwargs)
        out.sample[:, :, 0, 0] = float("nan")
        return out

    monkeypatch.setattr(AutoencoderKLTemporalDecoder, "decode", overflowing)
    out = tmp_path / "video.mp4"
    opts = AnimateOptions(reference=REPO / "example_workflows/inputs/stableanimator_reference.png",
                          driving=REPO / "example_workflows/inputs/stableanimator_driving.mp4", out=out,
                          models=tiny_models_dir, width=64, height=64, steps=1, max_frames=2, tile_size=2,
                          tile_overlap=1, precision="fp32", device="cpu")
    with pytest.raises(NonFiniteError, match="VAE decoding produced"):
        run_animation(opts)
    assert not out.exists()
