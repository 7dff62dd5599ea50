"""Sampler behaviour beyond the fixture: short videos, single frames, batched CFG, bad settings."""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler
from stableanimator_core.sampling.sampler import SamplerCallbacks, SamplerSettings

SIZE = ConditioningSettings(width=64, height=128)


def _cond(tiny_models, fixture_inputs, frames: int):
    return build_conditioning(tiny_models, fixture_inputs.reference, fixture_inputs.arcface_embedding,
                              fixture_inputs.poses[:frames], SIZE, seed=7)


def test_fewer_frames_than_window_runs_as_one_window(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 3)
    short = run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=16, tile_overlap=4, seed=1))
    exact = run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=3, tile_overlap=1, seed=1))
    assert short.shape == (1, 3, 4, 16, 8)
    assert torch.isfinite(short).all()
    assert torch.equal(short, exact)


def test_single_frame(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 1)
    out = run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=16, seed=1))
    assert out.shape == (1, 1, 4, 16, 8) and torch.isfinite(out).all()


def test_batched_cfg_equals_two_calls(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 5)
    a = run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=3, tile_overlap=1, batch_cfg=True))
    b = run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=3, tile_overlap=1, batch_cfg=False))
    # float rounding at sigma=700 alone gives ~4e-5 relative; the fixture tolerance is 1e-4
    assert (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()


def test_pose_features_computed_per_window_when_cache_is_small(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 5)
    a = run_sampler(tiny_models, cond, SamplerSettings(steps=1, tile_size=3, tile_overlap=1))
    b = run_sampler(tiny_models, cond, SamplerSettings(steps=1, tile_size=3, tile_overlap=1, pose_cache_bytes=0))
    assert torch.equal(a, b)


def test_seed_changes_the_result_and_is_reproducible(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 2)
    a = run_sampler(tiny_models, cond, SamplerSettings(steps=1, tile_size=2, tile_overlap=1, seed=1))
    b = run_sampler(tiny_models, cond, SamplerSettings(steps=1, tile_size=2, tile_overlap=1, seed=1))
    c = run_sampler(tiny_models, cond, SamplerSettings(steps=1, tile_size=2, tile_overlap=1, seed=2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_callbacks_report_progress_and_can_interrupt(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 5)
    calls, steps = [], []

    class Stop(Exception):
        pass

    def on_step(i, n, x0):
        steps.append((i, n, tuple(x0.shape)))
        if i == 1:
            raise Stop

    cb = SamplerCallbacks(on_unet_call=lambda d, t: calls.append((d, t)), on_step=on_step)
    with pytest.raises(Stop):
        run_sampler(tiny_models, cond, SamplerSettings(steps=3, tile_size=3, tile_overlap=1), callbacks=cb)
    assert calls == [(k, 6) for k in range(1, 5)]  # 2 windows x 3 steps in all; stopped after step 1
    assert steps == [(0, 3, (1, 5, 4, 16, 8)), (1, 3, (1, 5, 4, 16, 8))]


def test_guidance_must_exceed_one():
    with pytest.raises(ValueError, match="greater than 1.0"):
        SamplerSettings(min_guidance=1.0, max_guidance=1.0).validate()
