"""The prepared GPU check: everything worth measuring in the few minutes a GPU machine is lent, in one command.

    python -m benchmarks.gpu_check                       # CUDA, full sizes, about 8 minutes on one H100/H200
    python -m benchmarks.gpu_check --official PATH       # also the official pipeline (a StableAnimator checkout)
    python -m benchmarks.gpu_check --device cpu --quick  # tiny sizes: proves every check's code runs (CI)

One line per check on stdout; the JSON (every figure, each benchmark's own log) and the table go to
``benchmarks/results/gpu_check_<device>[_quick].{json,txt}``. A check that fails or raises is reported and the next
one runs; checks that would pass the time budget are skipped, saying so. The checks:

* ``parity_<run>``: the shared fixture's runs A, B, C replayed on the device in fp32, against its tolerances;
* ``unet_half_<W>x<H>x<F>``: the full-size UNet (random weights) evaluated once (batch 2, as batched CFG) in fp16
  and bf16: finite, error vs fp32, and the largest activation of the fp32 pass (fp16 headroom);
* ``sdpa_fp16_scores``: every available attention kernel with fp16 scores beyond 65504 (temporal attention over
  25 frames): finite and close to fp32;
* ``sync_per_step``: ``torch.cuda.set_sync_debug_mode`` over sampling: synchronisations per denoising step
  (a run of 2 steps minus a run of 1 step, so set-up and the final check do not count), with their sites;
* ``pipeline_vs_official``: ``bench_pipeline`` at 512x512x16 (ours, split CFG, fp8 storage; the official code
  with ``--official``): speed and peak-VRAM ratios (goals: >= 2x faster, <= 0.6x the VRAM);
* ``hjb_modes``: ``bench_hjb`` at 512x512x16, every mode (and the official step with ``--official``): peak VRAM
  (goal: memory_bounded and fast within 24 GiB) and s/iteration;
* ``unet_compile``: torch.compile of the UNet: compile time (first step) and steady-state speed-up.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

FP16_MAX = 65504.0
GOAL_SPEEDUP = 2.0
GOAL_VRAM_RATIO = 0.6
GOAL_HJB_GIB = 24.0


@dataclass
class Result:
    name: str
    status: str  # ok | fail | warn | skipped | error
    summary: str
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"[{self.status:>7s}] {self.name:32s} {self.seconds:6.1f} s  {self.summary}"


@dataclass
class Context:
    device: torch.device
    quick: bool
    fixture: Path
    official: Optional[Path]
    deadline: float
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[tuple[int, int, int]]:
        """(width, height, frames) of the full-size checks: the trained sizes, or tiny ones with --quick."""
        return [(64, 64, 4), (64, 128, 4)] if self.quick else [(512, 512, 16), (576, 1024, 16)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


# ----------------------------------------------------------------------------- parity on the device

def check_parity(ctx: Context, run: str) -> Result:
    from stableanimator_core.parity.replay import compare, replay

    with tempfile.TemporaryDirectory() as tmp:
        replay(ctx.fixture, run, Path(tmp), device=str(ctx.device))
        ok, rows = compare(ctx.fixture, run, Path(tmp))
    compared = [r for r in rows if "rel" in r and r.get("note") is None and r["tensor"] != "frames_uint8"]
    worst = max(compared, key=lambda r: r["rel"], default=None)
    failed = [r["tensor"] for r in rows if not r["ok"]]
    summary = (f"{len(rows) - len(failed)}/{len(rows)} tensors within the fixture's tolerances"
               + (f", worst rel {worst['rel']:.1e} ({worst['tensor']})" if worst else "")
               + (f"; FAILED: {', '.join(failed[:4])}" if failed else ""))
    return Result(f"parity_{run}", "ok" if ok else "fail", summary, data={"rows": rows})


# ----------------------------------------------------------------------------- UNet in half precision

def _unet(ctx: Context):
    if "unet" not in ctx.cache:
        from bench_models import fullsize_configs, make_unet, tiny_configs

        cfg = tiny_configs() if ctx.quick else fullsize_configs()
        torch.manual_seed(0)
        with torch.device(ctx.device):  # initialised on the device: seconds instead of a minute on the CPU
            unet = make_unet(cfg)
        ctx.cache["unet"] = unet.to(ctx.device).eval().requires_grad_(False)
    return ctx.cache["unet"]


def _unet_inputs(unet, width: int, height: int, frames: int, device: torch.device) -> tuple:
    """A batched-CFG call at the first (noisiest) step: unconditional half with zero reference, context, pose."""
    g = torch.Generator().manual_seed(1)
    h, w = height // 8, width // 8
    cfg = unet.config
    d = cfg.cross_attention_dim if isinstance(cfg.cross_attention_dim, int) else cfg.cross_attention_dim[0]
    sample = torch.randn(2, frames, 8, h, w, generator=g)
    sample[0, :, 4:] = 0
    ehs = torch.randn(2, 1 + cfg.num_id_tokens, d, generator=g)
    ehs[0] = 0
    time_ids = torch.tensor([[6.0, 127.0, 0.02]]).repeat(2, 1)
    pose = torch.randn(2, frames, cfg.block_out_channels[0], h, w, generator=g) * 0.5
    pose[0] = 0
    timestep = torch.tensor(0.25 * math.log(700.0))
    return tuple(t.to(device) for t in (sample, timestep, ehs, time_ids, pose))


@torch.no_grad()
def _largest_activation(unet, inputs: tuple) -> tuple[torch.Tensor, float, str]:
    """fp32 output and the largest |value| any module outputs (kept on the device until the end: one sync)."""
    names, maxima, payloads = [], [], []
    for name, module in unet.named_modules():
        if name:
            def hook(_m, _i, out, name=name):
                if isinstance(out, torch.Tensor) and out.is_floating_point():
                    names.append(name)
                    maxima.append(out.detach().abs().amax().float())
            payloads.append(module.register_forward_hook(hook))
    try:
        out = unet(*inputs)
    finally:
        for h in payloads:
            h.remove()
    stacked = torch.stack(maxima)
    i = int(stacked.argmax())
    return out, float(stacked[i]), names[i]


def check_unet_half(ctx: Context, width: int, height: int, frames: int) -> Result:
    from bench_models import unet_copy

    unet = _unet(ctx)
    inputs = _unet_inputs(unet, width, height, frames, ctx.device)
    ref, largest, where = _largest_activation(unet, inputs)
    data: dict[str, Any] = {"largest_fp32_activation": largest, "largest_at": where,
                            "fp16_headroom": FP16_MAX / max(largest, 1e-30)}
    ok = bool(torch.isfinite(ref).all())
    # rounding of random, untrained weights stays well below these; an overflow or a dropped cast gives ~1
    bounds = {"fp16": 5e-2, "bf16": 2e-1}
    parts = []
    from stableanimator_core.sampling.memory import unet_call_activation_bytes

    cuda = ctx.device.type == "cuda"
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        half = unet_copy(unet, dtype)
        half_inputs = tuple(t.to(dtype) if t.is_floating_point() and t.ndim > 0 else t for t in inputs)
        if cuda:
            _sync(ctx.device)
            base = torch.cuda.memory_allocated(ctx.device)
            torch.cuda.reset_peak_memory_stats(ctx.device)
        with torch.no_grad():
            out = half(*half_inputs)
        if cuda:  # what the memory request of the sampler stage estimates (sampling/memory.py)
            _sync(ctx.device)
            data[f"{name}_call_peak_gib"] = (torch.cuda.max_memory_allocated(ctx.device) - base) / 2**30
        data[f"{name}_call_estimate_gib"] = unet_call_activation_bytes(
            unet.config, height // 8, width // 8, frames, 2, dtype) / 2**30
        out = out.float()
        del half, half_inputs
        finite = bool(torch.isfinite(out).all())
        entry = {"finite": finite, "max_rel": _max_rel(out, ref) if finite else None,
                 "rel_l2": _rel_l2(out, ref) if finite else None}
        data[name] = entry
        ok &= finite and entry["rel_l2"] < bounds[name]
        parts.append(f"{name} " + (f"max rel {entry['max_rel']:.1e} (L2 {entry['rel_l2']:.1e})" if finite
                                   else "NON-FINITE"))
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    summary = ", ".join(parts) + f"; largest fp32 activation {largest:.3g} ({where}), fp16 headroom " \
                                 f"{data['fp16_headroom']:.1f}x"
    if cuda:
        summary += (f"; fp16 call peak {data['fp16_call_peak_gib']:.2f} GiB (memory request estimates "
                    f"{data['fp16_call_estimate_gib']:.2f})")
    return Result(f"unet_half_{width}x{height}x{frames}", "ok" if ok else "fail", summary, data=data)


def check_sdpa_fp16(ctx: Context) -> Result:
    """Temporal attention's shape (sequences of 25 frames) with scores beyond fp16's range, on every kernel."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(2)
    q, k = (torch.randn(256, 5, 25, 64, generator=g) * 120 for _ in range(2))
    v = torch.randn(256, 5, 25, 64, generator=g)
    q, k, v = (t.to(ctx.device) for t in (q, k, v))
    largest_score = float((q[:8] @ k[:8].transpose(-1, -2)).abs().max() / 8)
    ref = F.scaled_dot_product_attention(q, k, v)
    backends = [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]
    if ctx.device.type == "cuda":
        backends += [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    data, ok, parts = {"largest_score": largest_score}, True, []
    for backend in backends:
        name = backend.name.lower()
        try:
            with sdpa_kernel(backend):
                out = F.scaled_dot_product_attention(q.half(), k.half(), v.half()).float()
        except RuntimeError as exc:  # kernel not available for this device / shape
            data[name] = {"available": False, "reason": str(exc).splitlines()[0][:120]}
            parts.append(f"{name} n/a")
            continue
        finite = bool(torch.isfinite(out).all())
        err = _rel_l2(out, ref) if finite else None
        data[name] = {"available": True, "finite": finite, "rel_l2": err}
        ok &= finite and err < 5e-2
        parts.append(f"{name} " + (f"{err:.1e}" if finite else "NON-FINITE"))
    return Result("sdpa_fp16_scores", "ok" if ok else "fail",
                  f"scores up to {largest_score:.3g}: " + ", ".join(parts), data=data)


# ----------------------------------------------------------------------------- synchronisations per step

def check_sync_per_step(ctx: Context) -> Result:
    from stableanimator_core.parity.fixture import load_inputs, load_models
    from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler
    from stableanimator_core.sampling.sampler import SamplerSettings

    models = load_models(ctx.fixture, torch.float32, str(ctx.device))
    inputs = load_inputs(ctx.fixture)
    s = inputs.settings
    cond = build_conditioning(models, inputs.reference, inputs.arcface_embedding, inputs.poses,
                              ConditioningSettings(width=s["width"], height=s["height"]), s["seed"])
    cuda = ctx.device.type == "cuda"

    def syncs(steps: int) -> list[str]:
        settings = SamplerSettings(steps=steps, tile_size=4, tile_overlap=2, seed=s["seed"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                run_sampler(models, cond, settings, device=ctx.device)
                _sync(ctx.device)
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        return [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]

    syncs(1)  # warm-up: lazy initialisation is not the loop's
    one, two = syncs(1), syncs(2)
    per_step = len(two) - len(one)
    sites: dict[str, int] = {}
    for site in two:
        sites[site] = sites.get(site, 0) + 1
    for site in one:
        sites[site] -= 1
    sites = {k: v for k, v in sorted(sites.items(), key=lambda kv: -kv[1]) if v > 0}
    data = {"per_step": per_step, "one_step_run": len(one), "two_step_run": len(two), "per_step_sites": sites,
            "windows": 4, "frames": cond.num_frames}
    if not cuda:
        return Result("sync_per_step", "ok", "sampling ran (1 and 2 steps); counting synchronisations needs CUDA "
                      "(torch.cuda.set_sync_debug_mode)", data=data)
    summary = (f"{per_step} synchronisations per step over 4 windows ({len(one)} in a 1-step run incl. set-up)"
               + (": " + ", ".join(f"{k} x{v}" for k, v in list(sites.items())[:6]) if sites else ""))
    return Result("sync_per_step", "ok" if per_step == 0 else "warn", summary, data=data)


# ----------------------------------------------------------------------------- benchmarks

def _run_benchmark(main: Callable[[list[str]], int], argv: list[str]) -> tuple[dict, str]:
    """Run a benchmark's ``main`` with its JSON written to a temporary file; returns (report, captured output)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        flag = "--json" if main.__module__ == "bench_hjb" else "--out"
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            main(argv + [flag, str(out)])
        return json.loads(out.read_text()), buffer.getvalue()


def _pipeline_args(ctx: Context, variants: str, steps: int) -> list[str]:
    if ctx.quick:
        return ["--tiny", "--device", str(ctx.device), "--height", "64", "--width", "64", "--frames", "4",
                "--tile", "4", "--steps", str(steps), "--variants", variants, "--warmup", "0", "--no-flops"]
    return ["--device", str(ctx.device), "--height", "512", "--width", "512", "--frames", "16", "--tile", "16",
            "--steps", str(steps), "--dtype", "fp16", "--variants", variants, "--warmup", "1", "--no-flops"]


def _peak(row: dict) -> int:
    return max(row["peak_bytes"].values()) if row["peak_bytes"] else 0


def check_pipeline(ctx: Context) -> Result:
    import bench_pipeline

    argv = _pipeline_args(ctx, "ours,ours:2xb1,ours:fp8", steps=1 if ctx.quick else 3)
    if ctx.official is not None:
        argv += ["--baseline", str(ctx.official)]
    report, log = _run_benchmark(bench_pipeline.main, argv)
    rows = {r["variant"]: r for r in report["results"]}
    ref = rows.get("official")
    parts, ok = [], True
    for name in ("ours", "ours:2xb1", "ours:fp8"):
        r = rows[name]
        step = r["stages_s"]["step"]["median"]
        text = f"{name} step {step:.2f} s, peak {_peak(r) / 2**30:.2f} GiB"
        if ref is not None:
            speed = ref["stages_s"]["step"]["median"] / step
            vram = _peak(r) / max(1, _peak(ref))
            r["goal_met"] = speed >= GOAL_SPEEDUP and vram <= GOAL_VRAM_RATIO
            ok &= name != "ours" or r["goal_met"]
            text += f" ({speed:.2f}x faster, {vram:.2f}x VRAM)"
        parts.append(text)
    status = "ok" if ok else "warn"
    if ref is None:
        parts.append("official: not run (pass --official PATH_TO_STABLEANIMATOR_CHECKOUT)")
    return Result("pipeline_vs_official", status, "; ".join(parts), data={"report": report, "log": log})


def check_hjb(ctx: Context) -> Result:
    import bench_hjb

    if ctx.quick:
        argv = ["--tiny", "--device", str(ctx.device), "--height", "64", "--width", "64", "--frames", "2"]
    else:
        argv = ["--device", str(ctx.device), "--height", "512", "--width", "512", "--frames", "16"]
    argv += ["--iterations", "1"]
    if ctx.official is not None:
        argv += ["--baseline", str(ctx.official)]
    report, log = _run_benchmark(bench_hjb.main, argv)
    parts, ok = [], True
    for r in report["results"]:
        speed = r.get("speedup_vs_official")
        text = f"{r['variant']} {r['s_per_iter_median']:.2f} s/it, peak {r['peak_gib']:.2f} GiB"
        if speed is not None:
            text += f" ({speed:.2f}x)"
        if r["variant"] in ("memory_bounded", "fast"):
            r["within_24_gib"] = r["peak_gib"] <= GOAL_HJB_GIB
            ok &= r["within_24_gib"]
        parts.append(text)
    if ctx.official is None:
        parts.append("official: not run (--official)")
    return Result("hjb_modes", "ok" if ok else "warn", "; ".join(parts), data={"report": report, "log": log})


def check_compile(ctx: Context) -> Result:
    import bench_pipeline

    variant = "ours:compile-eager" if ctx.quick else "ours:compile"
    report, log = _run_benchmark(bench_pipeline.main, _pipeline_args(ctx, f"ours,{variant}", steps=2)
                                 + (["--skip-decode"]))
    rows = {r["variant"]: r for r in report["results"]}
    compiled = rows[variant]
    first = compiled.get("warmup_first_step_s") or compiled.get("compile_first_step_s")
    speed = compiled.get("speedup_vs_ours", {}).get("step")
    status = compiled.get("compile_status", "?")
    summary = (f"{variant}: status {status}, first step (compiles) {first:.1f} s, step speed-up "
               f"{speed:.2f}x vs eager" if first is not None and speed is not None else f"{variant}: status {status}")
    return Result("unet_compile", "ok" if status == "compiled" else "warn", summary,
                  data={"report": report, "log": log})


# ----------------------------------------------------------------------------- driver

# (name, function, estimated seconds on an H100/H200 at full size): a check is skipped when it would not finish
# within the budget
def plan(ctx: Context) -> list[tuple[str, Callable[[], Result], float]]:
    checks: list[tuple[str, Callable[[], Result], float]] = []
    for run in ("A_basic_tiled", "B_hjb_op_faithful", "C_hjb_tiled"):
        if ctx.quick and run != "A_basic_tiled":  # the same check with HJB; the test suite replays them on the CPU
            checks.append((f"parity_{run}", lambda run=run: Result(f"parity_{run}", "skipped", "--quick replays run "
                                                                   "A only (tests/parity replays B and C)"), 0))
            continue
        checks.append((f"parity_{run}", lambda run=run: check_parity(ctx, run), 15))
    checks.append(("sdpa_fp16_scores", lambda: check_sdpa_fp16(ctx), 5))
    for w, h, f in ctx.sizes:
        checks.append((f"unet_half_{w}x{h}x{f}", lambda w=w, h=h, f=f: check_unet_half(ctx, w, h, f), 40))
    checks.append(("sync_per_step", lambda: check_sync_per_step(ctx), 15))
    checks.append(("pipeline_vs_official", lambda: _free_unet(ctx) or check_pipeline(ctx), 150))
    checks.append(("hjb_modes", lambda: check_hjb(ctx), 90))
    checks.append(("unet_compile", lambda: check_compile(ctx), 150))
    return checks


def _free_unet(ctx: Context) -> None:
    ctx.cache.pop("unet", None)  # the benchmarks build their own models
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()


def run_checks(ctx: Context, only: Optional[set[str]] = None) -> list[Result]:
    results = []
    for name, fn, estimate in plan(ctx):
        if only and not any(name.startswith(o) for o in only):
            continue
        left = ctx.deadline - time.perf_counter()
        if not ctx.quick and left < estimate:
            result = Result(name, "skipped", f"time budget: {left:.0f} s left, needs about {estimate:.0f} s")
        else:
            start = time.perf_counter()
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - one broken check must not cost the others their minutes
                result = Result(name, "error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                                data={"traceback": traceback.format_exc()})
            result.seconds = time.perf_counter() - start
            if ctx.device.type == "cuda":
                result.data.setdefault("max_memory_allocated_gib", torch.cuda.max_memory_allocated(ctx.device) / 2**30)
                torch.cuda.reset_peak_memory_stats(ctx.device)
        print(result.line(), flush=True)
        results.append(result)
    return results


def machine(device: torch.device) -> dict[str, Any]:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(), "platform": platform.platform()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU CI: every check's code path, in minutes)")
    p.add_argument("--official", type=Path, default=os.environ.get("STABLEANIMATOR_OFFICIAL_DIR"),
                   help="a checkout of github.com/Francis-Rings/StableAnimator (read-only) for the comparisons")
    p.add_argument("--fixture", type=Path, default=Path(os.environ.get("STABLEANIMATOR_PARITY_DIR",
                                                                       ROOT.parent / "shared" / "parity")))
    p.add_argument("--budget-s", type=float, default=480.0, help="total time budget (default 8 minutes)")
    p.add_argument("--only", default="", help="comma-separated check-name prefixes")
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here; run with --device cpu --quick to check the code paths")
    if a.quick and a.official is not None:
        print("(--official is ignored with --quick: the official pipeline is full-size only)", file=sys.stderr)
        a.official = None
    start = time.perf_counter()
    ctx = Context(device, a.quick, a.fixture.resolve(), a.official, start + a.budget_s)
    print(f"gpu_check on {device}{' (quick)' if a.quick else ''}, budget {a.budget_s:.0f} s", flush=True)
    results = run_checks(ctx, {o.strip() for o in a.only.split(",") if o.strip()})
    total = time.perf_counter() - start
    print(f"{len(results)} checks in {total:.0f} s: "
          + ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in ("ok", "warn", "fail", "error", "skipped")),
          flush=True)

    a.out_dir.mkdir(parents=True, exist_ok=True)
    stem = a.out_dir / f"gpu_check_{device.type}{'_quick' if a.quick else ''}"
    report = {"machine": machine(device), "quick": a.quick, "official": str(a.official) if a.official else None,
              "total_s": total, "budget_s": a.budget_s, "checks": [asdict(r) for r in results]}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    stem.with_suffix(".txt").write_text("\n".join([json.dumps(report["machine"])] + [r.line() for r in results])
                                        + "\n")
    return 1 if any(r.status in ("fail", "error") for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
