"""Reduced-precision UNet options on parity run A: how far bf16 / fp16 compute and fp8 weight storage move the
result from the official fp32 recording, and that the deviation is rounding, not a bug.

Every variant changes only the UNet and PoseNet, its input stage (the conditioning is computed once in fp32,
latents and scheduler maths stay fp32, the VAE decodes in fp32), so the deviation is the UNet option's own.

Measured on this fixture (CPU, torch 2.13), relative L2 error vs the official fp32 recording:

===============  ==============  ============
UNet option      final latents   frames_float
===============  ==============  ============
bf16             3.5e-2          1.2e-2
fp16             4.2e-3          1.4e-3
fp8 e4m3 store   1.7e-1          5.6e-2
===============  ==============  ============

Why the bounds: a rounding-dominated error scales with the format's unit roundoff u (bf16 2^-8, fp16 2^-11, a
ratio of 8), times an amplification of the network (the fixture's random, untrained weights and guidance 3 give
about 10x on the final latents). So the bounds are about 2x the measured values, and bf16/fp16 must keep the
8x ratio (4..16): an error that is not float rounding (a latents or scheduler tensor kept in low precision, a
dropped cast) breaks the ratio or the bound. fp8 e4m3 rounds only the weights (u = 2^-4, per-channel scaled).
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from stableanimator_core.models.acceleration import store_weights_fp8, weight_storage_bytes
from stableanimator_core.pipeline.decode import decode_latents
from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler
from stableanimator_core.sampling.sampler import SamplerSettings

RUN = "A_basic_tiled"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # the tiny models are dispatch-bound: a second OpenMP thread only adds barrier waits (and stalls when other
    # processes share the cores), which made run A 10x slower here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def expected(parity):
    return load_file(str(parity / RUN / "tensors.safetensors"))


@pytest.fixture(scope="module")
def run_a(tiny_models, fixture_inputs):
    """Run A with a replacement UNet: returns (final latents, frames) for a given UNet."""
    s = fixture_inputs.settings
    cond_settings = ConditioningSettings(width=s["width"], height=s["height"], fps=s["fps"],
                                         motion_bucket_id=s["motion_bucket_id"],
                                         noise_aug_strength=s["noise_aug_strength"])
    sampler = SamplerSettings(steps=s["steps"], min_guidance=s["guidance_scale"], max_guidance=s["guidance_scale"],
                              tile_size=s["tile_size"], tile_overlap=s["tile_overlap"], seed=s["seed"])
    cond = build_conditioning(tiny_models, fixture_inputs.reference, fixture_inputs.arcface_embedding,
                              fixture_inputs.poses, cond_settings, s["seed"])

    def run(unet: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        models = copy.copy(tiny_models)
        models.unet = unet
        dtype = next(unet.parameters()).dtype
        if dtype != torch.float32:  # the sampler feeds PoseNet in the UNet's dtype, as the loader sets it up
            models.pose_net = copy.deepcopy(tiny_models.pose_net).to(dtype)
        latents = run_sampler(models, cond, sampler)
        assert latents.dtype == torch.float32  # scheduler maths and latents stay fp32 whatever the UNet runs in
        return latents.cpu(), decode_latents(tiny_models.vae, latents, s["decode_chunk_size"])

    return run


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.fixture(scope="module")
def half_errors(tiny_models, run_a, expected):
    errors = {}
    for dtype in (torch.bfloat16, torch.float16):
        latents, frames = run_a(copy.deepcopy(tiny_models.unet).to(dtype))
        assert torch.isfinite(latents).all() and torch.isfinite(frames).all()
        errors[dtype] = (_rel(latents, expected["final_latents"]), _rel(frames, expected["frames_float"]))
    return errors


def test_fp32_unet_reproduces_run_a(tiny_models, run_a, expected):
    """The reference point of the comparisons below: the fp32 path is the parity path."""
    latents, frames = run_a(tiny_models.unet)
    assert _rel(latents, expected["final_latents"]) < 1e-4
    assert (frames - expected["frames_float"]).abs().max() <= 2e-4


def test_bf16_unet_deviation(half_errors):
    lat, frames = half_errors[torch.bfloat16]
    assert 1e-3 < lat < 8e-2, lat  # nonzero: the UNet really ran in bf16
    assert frames < 3e-2, frames


def test_fp16_unet_deviation(half_errors):
    lat, frames = half_errors[torch.float16]
    assert 1e-4 < lat < 1e-2, lat
    assert frames < 4e-3, frames


def test_half_precision_error_is_rounding(half_errors):
    """bf16 has 3 fewer mantissa bits than fp16: pure rounding error is ~8x larger."""
    ratio = half_errors[torch.bfloat16][0] / half_errors[torch.float16][0]
    assert 4 < ratio < 16, ratio


def test_fp8_weight_storage_deviation_and_memory(tiny_models, run_a, expected):
    unet = copy.deepcopy(tiny_models.unet)
    before = weight_storage_bytes(unet)
    store_weights_fp8(unet, torch.float8_e4m3fn)
    after = weight_storage_bytes(unet)
    # fp32 -> fp8 is 4x on the Linear/Conv weights; scales, biases, norms and conv_in/conv_out stay
    assert after < 0.3 * before, (before, after)
    latents, frames = run_a(unet)
    lat_err, frames_err = _rel(latents, expected["final_latents"]), _rel(frames, expected["frames_float"])
    assert 2e-2 < lat_err < 0.35, lat_err  # approximate by design; bounded, and weights really were rounded
    assert frames_err < 0.12, frames_err
