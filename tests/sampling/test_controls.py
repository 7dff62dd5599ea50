"""Identity and pose strength with start/end percent: official at 1.0, off at 0, and off means not computed."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stableanimator_core.sampling.controls import OFFICIAL, TermWindow, step_of_sigma
from stableanimator_core.models.attention import IDCrossAttention
from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler
from stableanimator_core.sampling.sampler import SamplerCallbacks, SamplerSettings

SIZE = ConditioningSettings(width=64, height=128)
FRAMES, TILE, OVERLAP = 5, 3, 1  # two windows


@pytest.fixture(scope="module")
def cond(tiny_models, fixture_inputs):
    return build_conditioning(tiny_models, fixture_inputs.reference, fixture_inputs.arcface_embedding,
                              fixture_inputs.poses[:FRAMES], SIZE, seed=7)


def run(models, cond, identity=OFFICIAL, pose=OFFICIAL, steps=2, callbacks=SamplerCallbacks(), **settings):
    c = dataclasses.replace(cond, identity=identity, pose=pose)
    return run_sampler(models, c, SamplerSettings(steps=steps, tile_size=TILE, tile_overlap=OVERLAP, seed=3,
                                                  **settings), callbacks=callbacks)


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_strength_one_over_all_steps_is_the_official_output(tiny_models, cond, batch_cfg):
    # the defaults reproduce the parity fixture (test_parity_basic); the explicit values give the same bits
    default = run(tiny_models, cond, batch_cfg=batch_cfg)
    explicit = run(tiny_models, cond, TermWindow(1.0, 0.0, 1.0), TermWindow(1.0, 0.0, 1.0), batch_cfg=batch_cfg)
    assert torch.equal(default, explicit)


def test_id_strength_zero_equals_zeroed_id_adapter_outputs(tiny_models, cond, monkeypatch):
    default = run(tiny_models, cond)
    off = run(tiny_models, cond, identity=TermWindow(0.0))
    monkeypatch.setattr(IDCrossAttention, "id_term", lambda self, q, *a: torch.zeros_like(q.transpose(1, 2).flatten(2)))
    zeroed = run(tiny_models, cond)
    torch.testing.assert_close(off, zeroed, rtol=1e-5, atol=1e-5)  # rounding only (see the UNet test below)
    assert not torch.allclose(off, default, atol=1e-4)  # the ID adapter does matter in these weights


def test_pose_strength_zero_equals_zeroed_posenet_features(tiny_models, cond, monkeypatch):
    off = run(tiny_models, cond, pose=TermWindow(0.0))
    net = tiny_models.pose_net
    monkeypatch.setattr(net, "forward", lambda x: torch.zeros_like(type(net).forward(net, x)))
    zeroed = run(tiny_models, cond)
    assert torch.equal(off, zeroed)


def test_strengths_scale_their_term(tiny_models, cond):
    base = run(tiny_models, cond)
    for identity, pose in ((TermWindow(0.5), OFFICIAL), (OFFICIAL, TermWindow(2.0))):
        out = run(tiny_models, cond, identity, pose)
        assert torch.isfinite(out).all() and not torch.allclose(out, base, atol=1e-4)


class StepCounter:
    """Counts PoseNet and ID-attention calls per denoising step (forward hooks on the real modules)."""

    def __init__(self, models):
        self.step = 0
        self.pose, self.identity = {}, {}
        attn = next(m for m in models.unet.modules() if isinstance(m, IDCrossAttention))
        self.hooks = [models.pose_net.register_forward_hook(lambda *a: self._count(self.pose)),
                      attn.processor.id_to_k.register_forward_hook(lambda *a: self._count(self.identity))]
        self.callbacks = SamplerCallbacks(on_step=lambda i, n, x0: setattr(self, "step", i + 1))

    def _count(self, table):
        table[self.step] = table.get(self.step, 0) + 1

    def close(self):
        for h in self.hooks:
            h.remove()


def test_start_end_percent_skip_exactly_the_steps_outside(tiny_models, cond):
    counter = StepCounter(tiny_models)
    try:
        # 10 steps: pose on steps 2..5 (0.2 <= i/10 < 0.6), identity on 5..9; PoseNet per window (no cache)
        run(tiny_models, cond, TermWindow(1.0, 0.5, 1.0), TermWindow(1.5, 0.2, 0.6), steps=10,
            callbacks=counter.callbacks, pose_cache_bytes=0)
    finally:
        counter.close()
    windows = 2
    assert counter.pose == {i: windows for i in (2, 3, 4, 5)}
    assert counter.identity == {i: windows for i in (5, 6, 7, 8, 9)}  # one batched UNet call per window


def test_pose_cache_is_computed_only_when_a_step_uses_pose(tiny_models, cond):
    counter = StepCounter(tiny_models)
    try:
        run(tiny_models, cond, pose=TermWindow(1.0, 0.5, 1.0), steps=4, callbacks=counter.callbacks)
        assert counter.pose == {2: 1}  # all frames in one PoseNet chunk, on the first step that uses them
        counter.pose.clear()
        counter.step = 0
        run(tiny_models, cond, pose=TermWindow(0.0), steps=2, callbacks=counter.callbacks)
        run(tiny_models, cond, pose=TermWindow(1.0, 0.3, 0.3), steps=2, callbacks=counter.callbacks)
        assert counter.pose == {}
    finally:
        counter.close()


def test_term_window_rules():
    w = TermWindow(0.8, 0.25, 0.75)
    assert w.active_steps(4) == [1, 2] and w.active_steps(8) == [2, 3, 4, 5]
    assert w.scale(1, 4) == 0.8 and w.scale(3, 4) == 0.0
    assert OFFICIAL.active_steps(3) == [0, 1, 2] and OFFICIAL.is_official and not w.is_official
    assert TermWindow(0.0).active_steps(5) == []
    for bad in (TermWindow(-1.0), TermWindow(1.0, 0.6, 0.4), TermWindow(1.0, 0.0, 1.5)):
        with pytest.raises(ValueError, match="pose"):
            bad.validate("pose")
    with pytest.raises(ValueError, match="identity"):
        build_conditioning_settings = dataclasses.replace(SIZE, identity=TermWindow(1.0, 0.9, 0.1))
        from stableanimator_core.pipeline.animate import assemble_conditioning

        assemble_conditioning(torch.zeros(1, 1, 8), torch.zeros(1, 4, 8), torch.zeros(1, 4, 16, 8),
                              [torch.zeros(128, 64, 3)], build_conditioning_settings)


def test_step_of_sigma_finds_the_step_in_a_sigma_list():
    sigmas = torch.tensor([700.0, 30.0, 2.0, 0.1, 0.0])
    assert step_of_sigma(sigmas, torch.tensor([30.0])) == (1, 4)
    assert step_of_sigma(sigmas.tolist(), 0.1) == (3, 4)


@pytest.mark.parametrize("height, width", [(512, 512), (1024, 576)])
def test_id_scale_in_the_unet_at_the_trained_sizes(tiny_models, monkeypatch, height, width):
    unet = tiny_models.unet
    g = torch.Generator().manual_seed(0)
    frames, h, w = 2, height // 8, width // 8
    sample = torch.randn((1, frames, unet.config.in_channels, h, w), generator=g)
    ehs = torch.randn((1, 1 + unet.config.num_id_tokens, unet.config.per_block("cross_attention_dim")[0]),
                      generator=g)
    ids = torch.tensor([[6.0, 127.0, 0.02]])
    with torch.no_grad():
        default = unet(sample, 1.0, ehs, ids)
        assert torch.equal(unet(sample, 1.0, ehs, ids, id_scale=1.0), default)
        half = unet(sample, 1.0, ehs, ids, id_scale=0.5)
        off = unet(sample, 1.0, ehs, ids, id_scale=0.0)
        monkeypatch.setattr(IDCrossAttention, "id_term",
                            lambda self, q, *a: torch.zeros_like(q.transpose(1, 2).flatten(2)))
        zeroed = unet(sample, 1.0, ehs, ids)
    # the same values; "off" applies to_out to one CLIP vector per frame instead of one per position, so the
    # matrix products differ in rounding only
    torch.testing.assert_close(off, zeroed, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(half, default) and not torch.allclose(half, off)
