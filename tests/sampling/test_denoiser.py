"""The windowed denoiser and the Euler loop: the branch API, hooks, and no host-device synchronisation per
window and step (issue 11, item 3), checked on the CPU by counting every call that would wait for a device."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, latent_noise, run_sampler
from stableanimator_core.sampling.denoiser import BOTH, COND, UNCOND, WindowedDenoiser, guidance_ramp
from stableanimator_core.sampling.loop import StepHook, euler_loop
from stableanimator_core.sampling.preview import preview_frame
from stableanimator_core.sampling.sampler import SamplerCallbacks, SamplerSettings, plan_sampling
from stableanimator_core.sampling.scheduler import karras_schedule, predict_x0
from stableanimator_core.sampling.windows import plan_windows

SIZE = ConditioningSettings(width=64, height=128)


def _cond(tiny_models, fixture_inputs, frames: int):
    return build_conditioning(tiny_models, fixture_inputs.reference, fixture_inputs.arcface_embedding,
                              fixture_inputs.poses[:frames], SIZE, seed=7)
# Host reads that Python sees (on the CPU ``.cpu()`` dispatches no op, so it is counted here) ...
SYNCING_METHODS = ("item", "cpu", "tolist", "numpy")
# ... and the ops behind every other host-device round trip: a value read on the host (item, bool, int, float)
# and a tensor made from host data (a Python list used as an index, torch.tensor in the loop), which on a GPU is
# a copy from pageable memory that the host waits for.
SYNCING_OPS = ("aten._local_scalar_dense", "aten.lift_fresh")


class _OpLog(TorchDispatchMode):
    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in SYNCING_OPS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def host_reads(monkeypatch):
    """``with reads.counting(): ...`` records every syncing method call and op inside the block."""
    seen: list[str] = []
    state = {"on": False}
    for name in SYNCING_METHODS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            if state["on"]:
                seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    class Reads(list):
        @contextlib.contextmanager
        def counting(self):
            self.clear()
            state["on"] = True
            try:
                with _OpLog(seen):
                    yield self
            finally:
                state["on"] = False
                self.extend(seen)
                seen.clear()

    return Reads()


@pytest.mark.parametrize("batch_cfg, pose_cache_bytes", [(True, 2 << 30), (False, 2 << 30), (True, 0)])
def test_the_loop_reads_nothing_back_from_the_device(tiny_models, fixture_inputs, host_reads, batch_cfg,
                                                     pose_cache_bytes):
    cond = _cond(tiny_models, fixture_inputs, 5)
    settings = SamplerSettings(steps=3, tile_size=3, tile_overlap=1, seed=1, batch_cfg=batch_cfg,
                               pose_cache_bytes=pose_cache_bytes)
    den = _denoiser(tiny_models, cond, settings)
    progress = []
    den.on_unet_call = lambda call: progress.append(call.window)
    schedule = karras_schedule(3)
    latents = latent_noise(1, 64, 128, 5, 3).repeat(1, 2, 1, 1, 1)[:, :5] * schedule.init_noise_sigma
    with host_reads.counting():
        out = euler_loop(den, latents, schedule)
    assert progress == [0, 1] * 3  # 2 windows x 3 steps, all observed
    # The skeletons are stored packed on the host; what reaches the device is their upload to PoseNet: once for
    # the video when the features are cached (one chunk here); per window when they are not (the trade that mode
    # makes for device memory). Nothing is ever read back.
    assert set(host_reads) <= {"aten.lift_fresh"}
    if pose_cache_bytes:
        assert host_reads == ["aten.lift_fresh"]
    assert torch.isfinite(out).all()


def test_host_work_of_a_run_does_not_grow_with_steps(tiny_models, fixture_inputs, host_reads):
    """The whole run with progress callbacks: set-up work only (index tensors, once) and the one finiteness check
    where sampling ends (numerics.require_finite), nothing per step."""
    cond = _cond(tiny_models, fixture_inputs, 5)
    counts = []
    for steps in (1, 3):
        progress = []
        callbacks = SamplerCallbacks(on_unet_call=lambda d, t: progress.append((d, t)))
        with host_reads.counting():
            run_sampler(tiny_models, cond, SamplerSettings(steps=steps, tile_size=3, tile_overlap=1), callbacks=callbacks)
        assert progress[-1] == (2 * steps, 2 * steps)
        assert host_reads.count("aten._local_scalar_dense") == 1 and "item" not in host_reads
        counts.append(len(host_reads))
    assert counts[0] == counts[1]


def test_the_counter_sees_host_reads_inside_sampling(tiny_models, fixture_inputs, host_reads):
    """Control: previews copy x0 to the host every step, and the counter sees those copies."""
    cond = _cond(tiny_models, fixture_inputs, 5)
    with host_reads.counting():
        run_sampler(tiny_models, cond, SamplerSettings(steps=2, tile_size=3, tile_overlap=1),
                    callbacks=SamplerCallbacks(on_step=lambda i, n, x0: preview_frame(x0)))
    assert host_reads.count("cpu") == 2


def test_the_counter_sees_list_indexing_and_value_reads(host_reads):
    """Control: what the old loop did per window (a Python list as index, a scalar read) is counted."""
    x = torch.zeros(1, 5, 4)
    with host_reads.counting():
        x[:, [0, 2, 3]] += 1
        bool(x.sum() > 0)
    assert host_reads.count("aten.lift_fresh") == 2 and host_reads.count("aten._local_scalar_dense") == 1


def _denoiser(tiny_models, cond, settings):
    plan = plan_sampling(cond.num_frames, settings).windows
    guidance = guidance_ramp(settings.min_guidance, settings.max_guidance, cond.num_frames)
    return WindowedDenoiser(tiny_models.unet, tiny_models.pose_net, cond, plan, guidance,
                            batch_cfg=settings.batch_cfg)


def test_branch_outputs_one_at_a_time_equal_both_together(tiny_models, fixture_inputs):
    """A sampler doing its own guidance (e.g. ComfyUI's) asks for one branch per call; same numbers."""
    cond = _cond(tiny_models, fixture_inputs, 5)
    den = _denoiser(tiny_models, cond, SamplerSettings(tile_size=3, tile_overlap=1, min_guidance=2.0))
    sigma = karras_schedule(3).sigmas[1]
    latents = torch.randn((1, 5, 4, 16, 8), generator=torch.Generator().manual_seed(0))
    both = den.branch_outputs(latents, sigma, BOTH)
    uncond = den.branch_outputs(latents, sigma, (UNCOND,))
    cond_only = den.branch_outputs(latents, sigma, (COND,))
    assert both.shape == (2, 5, 4, 16, 8)
    torch.testing.assert_close(uncond[0], both[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond_only[0], both[1], rtol=1e-5, atol=1e-5)
    guided = den(latents, sigma)
    ramp = torch.linspace(2.0, 3.0, 5).view(1, 5, 1, 1, 1)
    torch.testing.assert_close(guided, both[:1] + ramp * (both[1:] - both[:1]), rtol=0, atol=0)
    assert not torch.equal(both[0], both[1])


def test_euler_loop_hooks_see_every_step_and_refine_x0(tiny_models, fixture_inputs):
    cond = _cond(tiny_models, fixture_inputs, 3)
    settings = SamplerSettings(steps=3, tile_size=3, tile_overlap=1, seed=1)
    den = _denoiser(tiny_models, cond, settings)
    schedule = karras_schedule(3)
    noise = latent_noise(1, 64, 128, 3, 3)
    events = []

    class Spy(StepHook):
        def step_start(self, step):
            events.append(("start", step.index, step.x0 is None))

        def refine_x0(self, step):
            torch.testing.assert_close(step.x0, predict_x0(step.model_output, step.latents, step.sigma))
            return step.x0 * 0 if step.index == 1 else step.x0  # replace x0 at step 1 only

        def step_end(self, step):
            events.append(("end", step.index, bool((step.x0 == 0).all())))

    out = euler_loop(den, noise * schedule.init_noise_sigma, schedule, [Spy()])
    assert events == [("start", 0, True), ("end", 0, False), ("start", 1, True), ("end", 1, True),
                      ("start", 2, True), ("end", 2, False)]
    reference = run_sampler(tiny_models, cond, settings)
    assert not torch.equal(out, reference)  # the refined x0 was used


def test_plan_normalises_the_tiling_once_and_counts_progress():
    plan = plan_sampling(40, SamplerSettings(steps=5, tile_size=16, tile_overlap=4))
    assert plan.windows.count == 3 and plan.unet_calls == 15
    assert plan_windows(5, 16, 4).tile_size == 5 and plan_windows(5, 16, 4).overlap == 4
    assert plan_windows(3, 16, 8).overlap == 2  # clamped below the (effective) tile

    class HJB:
        def total_iterations(self, steps):
            return 2 * steps

    assert plan.progress_total(HJB()) == 15 + 10
