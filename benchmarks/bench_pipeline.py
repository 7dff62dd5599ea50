#!/usr/bin/env python
"""End-to-end StableAnimator benchmark: our pipeline (and variants) vs the official one, per stage.

Full-size architectures (SVD-xt UNet + ID adapter, PoseNet, FusionFaceId, temporal VAE, CLIP ViT-H/14; iresnet100
with --hjb) with seeded random weights: time and memory do not depend on weight values. Both pipelines get the
very same weight tensors, reference image, skeleton frames, ArcFace vector and noise.

  python benchmarks/bench_pipeline.py --device cpu --height 256 --width 256 --frames 8 --steps 2 --tile 8 \
      --baseline /path/to/StableAnimator --out bench.json
  python benchmarks/bench_pipeline.py --device cuda --height 512 --width 512 --frames 16 --steps 3 --tile 16 \
      --dtype fp16 --variants ours,ours:bf16,ours:fp8,ours:compile --baseline /path/to/StableAnimator \
      --gpu-memory-gb 24 --repeats 3 --out bench.json

Variants (``--variants``, comma-separated): ``ours`` plus options after a colon joined by ``+``:
``bf16``/``fp16``/``fp32`` (UNet and PoseNet dtype; default ``--dtype``), ``fp8`` / ``fp8e5m2`` (fp8 weight storage),
``compile`` / ``compile-max`` (torch.compile, mode default / max-autotune; ``compile-eager``: dynamo's eager
backend, no code generation), ``2xb1`` (two batch-1 UNet calls per
window instead of one batch-2 call). ``--baseline PATH`` adds "official (xformers→SDPA stand-in)", imported at run
time from PATH (see ``official_baseline.py``), run in ``--dtype`` like ``inference_basic.py`` (whole pipeline cast,
VAE included). Repeats run the variants interleaved (A B A B ...) so drift hits all alike.

Stages: ``encode`` (CLIP + face tokens + VAE encode of the reference), ``step`` (one denoising step: PoseNet, every
window's UNet call(s), blending, Euler; with --hjb including the HJB refinement), ``decode`` (temporal VAE decode),
``hjb_iteration`` (one Adam iteration of the face refinement). Times: medians with min-max over all samples
(steps x repeats for ``step``), after ``--warmup`` untimed runs of ``--warmup-steps`` steps per variant (oneDNN /
cuDNN kernel selection, allocator growth, compile). Peak memory: see ``bench_measure.py``. TFLOP/s: FLOPs counted once on ``meta``
with the real shapes / median time; MFU against a GEMM measured in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from bench_measure import StageClock, Summary, count_flops, matmul_ceiling, synchronize  # noqa: E402
from bench_models import (BenchInputs, build_models, fullsize_configs, make_clip, make_face_encoder,  # noqa: E402
                          make_inputs, make_pose_net, make_unet, make_vae, tiny_configs, unet_copy)
from stableanimator_core.models import acceleration as acc  # noqa: E402
from stableanimator_core.pipeline.decode import decode_latents  # noqa: E402
from stableanimator_core.loading.bundle import StableAnimatorModels  # noqa: E402
from stableanimator_core.pipeline.animate import ConditioningSettings, build_conditioning, run_sampler  # noqa: E402
from stableanimator_core.sampling.sampler import SamplerCallbacks, SamplerSettings  # noqa: E402
from stableanimator_core.sampling.windows import effective_tile_size, window_indices  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES_BY_NAME = {str(d).replace("torch.", ""): d for d in DTYPES.values()}
OFFICIAL = "official"


# ----------------------------------------------------------------------------- variants

@dataclass
class Variant:
    name: str
    kind: str  # "ours" or "official"
    dtype: torch.dtype
    fp8: Optional[torch.dtype] = None
    compile_mode: Optional[str] = None
    compile_backend: str = "inductor"
    batch_cfg: bool = True

    @property
    def label(self) -> str:
        if self.kind == OFFICIAL:
            from official_baseline import LABEL

            return LABEL
        return self.name


def parse_variant(spec: str, default_dtype: torch.dtype) -> Variant:
    kind, _, opts = spec.partition(":")
    if kind != "ours":
        raise SystemExit(f"unknown variant {spec!r} (the official pipeline is added by --baseline)")
    v = Variant(spec, "ours", default_dtype)
    for opt in filter(None, opts.split("+")):
        if opt in DTYPES:
            v.dtype = DTYPES[opt]
        elif opt == "fp8":
            v.fp8 = torch.float8_e4m3fn
        elif opt == "fp8e5m2":
            v.fp8 = torch.float8_e5m2
        elif opt in ("compile", "compile-max"):
            v.compile_mode = "default" if opt == "compile" else "max-autotune"
        elif opt == "compile-eager":  # dynamo tracing without code generation: checks the path, quickly
            v.compile_mode, v.compile_backend = "default", "eager"
        elif opt == "2xb1":
            v.batch_cfg = False
        else:
            raise SystemExit(f"unknown option {opt!r} in variant {spec!r}")
    return v


class OursRunner:
    def __init__(self, base: StableAnimatorModels, variant: Variant):
        self.variant = variant
        models = copy.copy(base)
        if variant.dtype != base.dtype or variant.fp8 is not None or variant.compile_mode is not None:
            # same-dtype copies share the base tensors; fp8/compile change only the copy
            models.unet = unet_copy(base.unet, variant.dtype)
            if variant.dtype != base.dtype:
                models.pose_net = copy.deepcopy(base.pose_net).to(variant.dtype)
            if variant.fp8 is not None:
                acc.store_weights_fp8(models.unet, variant.fp8)
            if variant.compile_mode is not None:
                acc.compile_unet(models.unet, mode=variant.compile_mode, backend=variant.compile_backend)
        self.models = models

    def run(self, inputs: BenchInputs, a: argparse.Namespace, clock: StageClock, decode: bool,
            hjb_times: Optional[list[float]]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        m = self.models
        cond_settings = ConditioningSettings(width=a.width, height=a.height)
        settings = SamplerSettings(steps=a.steps, min_guidance=a.guidance, max_guidance=a.guidance,
                                   tile_size=a.tile, tile_overlap=min(a.overlap, max(a.tile - 1, 0)), seed=a.seed,
                                   batch_cfg=self.variant.batch_cfg)
        refiner = self._refiner(inputs, a, hjb_times) if a.hjb else None

        def on_step(i: int, n: int, x0: torch.Tensor) -> None:
            if i + 1 < n:
                clock.start(f"step{i + 1}")
            else:
                clock.stop()

        clock.start("encode")
        cond = build_conditioning(m, inputs.reference, inputs.arcface, inputs.poses, cond_settings, a.seed)
        clock.start("step0")
        latents = run_sampler(m, cond, settings, refiner=refiner, callbacks=SamplerCallbacks(on_step=on_step))
        frames = None
        if decode:
            clock.start("decode")
            frames = decode_latents(m.vae, latents, a.decode_chunk)
        clock.stop()
        return latents.float().cpu(), frames

    def _refiner(self, inputs: BenchInputs, a: argparse.Namespace, hjb_times: Optional[list[float]]):
        from stableanimator_core.hjb.sampler_hook import HJBStepHook
        from stableanimator_core.hjb import FaceRefiner, HJBSettings

        m = self.models
        device = next(m.vae.parameters()).device
        settings = HJBSettings(num_iterations=a.hjb, start_step=0, end_step=a.steps - 1, mode=a.hjb_mode,
                               decode_chunk_size=4)
        refiner = HJBStepHook(FaceRefiner(m.vae, m.face_embedder, inputs.reference_face_embedding.to(device),
                                             inputs.face_boxes, settings), settings)
        inner = refiner.refine

        def timed(x0, step_index, num_steps):
            synchronize(device)
            t0 = time.perf_counter()
            out = inner(x0, step_index, num_steps)
            synchronize(device)
            if hjb_times is not None:
                hjb_times.append((time.perf_counter() - t0) / a.hjb)
            return out

        refiner.refine = timed
        return refiner


# ----------------------------------------------------------------------------- FLOPs (meta device, real shapes)

def architecture(a: argparse.Namespace) -> dict[str, Any]:
    return tiny_configs() if a.tiny else fullsize_configs()


def count_pipeline_flops(a: argparse.Namespace, variants: list[Variant]) -> dict[str, float]:
    cfg = architecture(a)
    meta = torch.device("meta")
    h, w = a.height // 8, a.width // 8
    tile = effective_tile_size(a.frames, a.tile)
    with torch.device(meta):
        # .to(meta): diffusers' AlphaBlender builds its parameter with torch.Tensor([...]), which ignores the
        # device context
        unet, clip, vae = make_unet(cfg).to(meta), make_clip(cfg).to(meta), make_vae(cfg).to(meta)
        pose_net, face = make_pose_net(cfg).to(meta), make_face_encoder(cfg).to(meta)
    d = cfg["unet"]["cross_attention_dim"]
    ch0 = cfg["unet"]["block_out_channels"][0]
    e = lambda *s: torch.empty(*s, device=meta)  # noqa: E731
    f: dict[str, float] = {}
    # factories without a device inside the models (e.g. the temporal decoder's indicator) must land on meta too
    with torch.no_grad(), torch.device(meta):
        f["clip"] = count_flops(lambda: clip(pixel_values=e(1, 3, 224, 224)).image_embeds)
        f["vae_encode"] = count_flops(lambda: vae.encode(e(1, 3, a.height, a.width)).latent_dist.mode())
        f["face_encoder"] = count_flops(lambda: face(e(1, 512), e(1, 1, d)))
        f["pose_net_frame"] = count_flops(lambda: pose_net(e(1, 3, a.height, a.width)))
        for b in (1, 2):
            f[f"unet_b{b}"] = count_flops(lambda: unet(e(b, tile, 8, h, w), e(()), e(b, 5, d), e(b, 3),
                                                       e(b, tile, ch0, h, w)))
        n = a.frames
        chunks = [min(a.decode_chunk, n - s) for s in range(0, n, a.decode_chunk)]
        f["decode"] = sum(count_flops(lambda c=c: vae.decode(e(c, 4, h, w), num_frames=c).sample) for c in chunks)
        if a.baseline is not None:
            from official_baseline import official_unet_flops

            f["official_unet_b1"] = official_unet_flops(a.baseline, tile, h, w, count_flops)
    return f


def stage_flops(v: Variant, f: dict[str, float], a: argparse.Namespace) -> dict[str, float]:
    tile = effective_tile_size(a.frames, a.tile)
    windows = len(window_indices(a.frames, tile, min(a.overlap, tile - 1)))
    if v.kind == OFFICIAL:
        step = windows * (2 * f["official_unet_b1"] + tile * f["pose_net_frame"])
    else:
        unet = f["unet_b2"] if v.batch_cfg else 2 * f["unet_b1"]
        step = windows * unet + a.frames * f["pose_net_frame"] / a.steps  # PoseNet once per frame, whole video
    return {"encode": f["clip"] + f["vae_encode"] + f["face_encoder"], "step": step, "decode": f["decode"]}


# ----------------------------------------------------------------------------- main

def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tile", type=int, default=8, help="window (tile_size); official default 16")
    p.add_argument("--overlap", type=int, default=4, help="window overlap (official default 4)")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--decode-chunk", type=int, default=4, help="VAE decode chunk (official 4)")
    p.add_argument("--skip-decode", action="store_true", help="time encode and steps only")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--variants", default="ours")
    p.add_argument("--baseline", type=Path, default=None, help="official StableAnimator checkout (read-only)")
    p.add_argument("--hjb", type=int, default=0, help="HJB Adam iterations per step (0: off), refining every step")
    p.add_argument("--hjb-mode", default="faithful", choices=["faithful", "memory_bounded", "fast"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per variant before timing")
    p.add_argument("--warmup-steps", type=int, default=1,
                   help="denoising steps of a warm-up run (every kernel shape is met in one step)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--gpu-memory-gb", type=float, default=None,
                   help="cap this process's CUDA memory (set_per_process_memory_fraction) to emulate a smaller card")
    p.add_argument("--no-flops", action="store_true")
    p.add_argument("--tiny", action="store_true",
                   help="the tiny test architectures instead of the full-size ones (checks that the code runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    return p.parse_args(argv)


@dataclass
class Collected:
    stages: dict[str, list[float]] = field(default_factory=lambda: {"encode": [], "step": [], "decode": []})
    hjb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    peak: dict[str, int] = field(default_factory=dict)
    peak_abs: int = 0
    first_step: list[float] = field(default_factory=list)
    latents: Optional[torch.Tensor] = None
    frames: Optional[torch.Tensor] = None


def run_once(runner, inputs: BenchInputs, a, device: torch.device, clock: StageClock, store: Optional[Collected]):
    hjb_times: list[float] = []
    synchronize(device)
    t0 = time.perf_counter()
    if isinstance(runner, OursRunner):
        latents, frames = runner.run(inputs, a, clock, not a.skip_decode, hjb_times)
    else:
        tile = effective_tile_size(a.frames, a.tile)  # what our sampler does; the official code needs F >= T
        latents, frames = runner.run(inputs, a.height, a.width, a.steps, tile, min(a.overlap, tile - 1), a.guidance,
                                     a.decode_chunk, a.seed, clock, decode=not a.skip_decode, hjb_times=hjb_times)
    synchronize(device)
    total = time.perf_counter() - t0
    records = clock.take()
    if not torch.isfinite(latents).all() or (frames is not None and not torch.isfinite(frames).all()):
        raise RuntimeError("non-finite output: the random initialisation overflows in this dtype")
    if store is None:
        return
    store.total.append(total)
    store.hjb.extend(hjb_times)
    for r in records:
        stage = "step" if r.name.startswith("step") else r.name
        store.stages.setdefault(stage, []).append(r.seconds)
        store.peak[stage] = max(store.peak.get(stage, 0), r.peak_bytes)
        store.peak_abs = max(store.peak_abs, r.peak_abs_bytes)
        if r.name == "step0":
            store.first_step.append(r.seconds)
    store.latents, store.frames = latents, frames


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


def main(argv: Optional[list[str]] = None) -> int:
    a = parse_args(argv)
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if device.type == "cuda" and a.gpu_memory_gb:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, a.gpu_memory_gb * 2**30 / total), device)
    base_dtype = DTYPES[a.dtype]
    warmup = a.warmup
    warm_args = copy.copy(a)
    warm_args.steps = max(1, min(a.warmup_steps, a.steps))
    variants = [parse_variant(s.strip(), base_dtype) for s in a.variants.split(",") if s.strip()]
    if a.baseline is not None:
        variants.insert(0, Variant(OFFICIAL, OFFICIAL, base_dtype))
    load = os.getloadavg()
    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731

    log("[bench] counting FLOPs on meta ...")
    flops = {} if a.no_flops else count_pipeline_flops(a, variants)
    log("[bench] matmul ceiling ...")
    ceilings = {}
    for dt in sorted({v.dtype for v in variants} | ({torch.bfloat16} if device.type == "cuda" else set()), key=str):
        ceilings[str(dt).replace("torch.", "")] = matmul_ceiling(device, dt)
    log(f"[bench] building full-size models (seed {a.seed}) ...")
    t0 = time.perf_counter()
    if a.tiny and a.baseline is not None:
        raise SystemExit("--tiny cannot be combined with --baseline (the official pipeline is built full-size)")
    base = build_models(a.seed, base_dtype, device, with_face_embedder=a.hjb > 0, configs=architecture(a))
    inputs = make_inputs(a.frames, a.height, a.width, a.seed)
    runners: dict[str, Any] = {}
    for v in variants:
        if v.kind == OFFICIAL:
            from official_baseline import OfficialPipeline

            runners[v.name] = OfficialPipeline(a.baseline, base, base_dtype, device, a.hjb)
        else:
            runners[v.name] = OursRunner(base, v)
    log(f"[bench] models ready in {time.perf_counter() - t0:.0f} s")

    clock = StageClock(device)
    results = {v.name: Collected() for v in variants}
    warm = {v.name: Collected() for v in variants}
    try:
        for v in variants:
            for _ in range(warmup):
                log(f"[bench] warm-up {v.name} ({warm_args.steps} step)")
                run_once(runners[v.name], inputs, warm_args, device, clock, warm[v.name])
        for r in range(a.repeats):
            order = variants if r % 2 == 0 else variants[::-1]  # A B, then B A: first-run effects cancel
            for v in order:
                log(f"[bench] repeat {r + 1}/{a.repeats}: {v.name}")
                run_once(runners[v.name], inputs, a, device, clock, results[v.name])
                c = results[v.name]
                log(f"         total {c.total[-1]:.1f} s, step {c.stages['step'][-1]:.1f} s")
    finally:
        clock.close()
    # again at the end: on a shared machine the load can change during the run; MFU uses the better of the two
    for key, before in list(ceilings.items()):
        after = matmul_ceiling(device, DTYPES_BY_NAME[key])
        ceilings[key] = dict(after if after["tflops"] > before["tflops"] else before,
                             tflops_start=before["tflops"], tflops_end=after["tflops"])

    report = build_report(a, variants, runners, results, flops, ceilings, load, warmup, device, warm)
    print(format_table(report))
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    return 0


def _summ(values: list[float]) -> Optional[dict]:
    s = Summary.of(values)
    return None if s is None else {"median": s.median, "min": s.min, "max": s.max, "n": s.n, "values": s.values}


def build_report(a, variants, runners, results, flops, ceilings, load, warmup, device, warm) -> dict:
    ref = variants[0].name
    tile = effective_tile_size(a.frames, a.tile)
    windows = len(window_indices(a.frames, tile, min(a.overlap, tile - 1)))
    rows = []
    for v in variants:
        c = results[v.name]
        steps = list(c.stages.get("step", []))
        row: dict[str, Any] = {
            "variant": v.name, "label": v.label, "dtype": str(v.dtype).replace("torch.", ""),
            "fp8_storage": str(v.fp8).replace("torch.", "") if v.fp8 else None, "compile": v.compile_mode,
            "batch_cfg": v.batch_cfg,
            "stages_s": {k: _summ(vals) for k, vals in c.stages.items() if vals},
            "hjb_iteration_s": _summ(c.hjb), "total_s": _summ(c.total),
            "peak_bytes": c.peak, "peak_abs_bytes": c.peak_abs,
        }
        if warm[v.name].first_step:
            # first UNet step of the warm-up: with compile, this is where compilation happens
            row["warmup_first_step_s"] = warm[v.name].first_step[0]
        if v.compile_mode and warmup == 0 and c.first_step:
            # the first timed step compiled the UNet: keep it out of the steady-state step time
            row["compile_first_step_s"] = c.first_step[0]
            steps.remove(c.first_step[0])
            row["stages_s"]["step"] = _summ(steps)
        if v.kind != OFFICIAL:
            row["unet_weight_bytes"] = acc.weight_storage_bytes(runners[v.name].models.unet)
            row["compile_status"] = acc.compile_status(runners[v.name].models.unet)
        else:
            row["unet_weight_bytes"] = acc.weight_storage_bytes(runners[v.name].unet)
        if flops:
            sf = stage_flops(v, flops, a)
            ceil = ceilings.get(row["dtype"]) or next(iter(ceilings.values()))
            row["flops"] = sf
            row["tflops"] = {}
            for k, fl in sf.items():
                s = row["stages_s"].get(k)
                if s:
                    row["tflops"][k] = fl / s["median"] / 1e12
            row["mfu_step"] = row["tflops"].get("step", 0) / ceil["tflops"] if row["tflops"].get("step") else None
        rows.append(row)
    # ratios and deviations against the reference (the official pipeline when present)
    r0 = next(r for r in rows if r["variant"] == ref)
    for row, v in zip(rows, variants):
        if v.name == ref:
            continue
        ratios = {}
        for k, s in row["stages_s"].items():
            if s and r0["stages_s"].get(k):
                ratios[k] = r0["stages_s"][k]["median"] / s["median"]
        if row["total_s"] and r0["total_s"]:
            ratios["total"] = r0["total_s"]["median"] / row["total_s"]["median"]
        if row["hjb_iteration_s"] and r0["hjb_iteration_s"]:
            ratios["hjb_iteration"] = r0["hjb_iteration_s"]["median"] / row["hjb_iteration_s"]["median"]
        row["speedup_vs_" + ref] = ratios
        cv, cr = results[v.name], results[ref]
        dev = {"final_latents_rel_l2": rel_l2(cv.latents, cr.latents),
               "final_latents_max_rel": float((cv.latents - cr.latents).abs().max() / cr.latents.abs().max())}
        if cv.frames is not None and cr.frames is not None:
            dev["frames_rel_l2"] = rel_l2(cv.frames, cr.frames)
            dev["frames_max_abs"] = float((cv.frames - cr.frames).abs().max())
        row["deviation_vs_" + ref] = dev
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_threads": torch.get_num_threads(), "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
        "torch": torch.__version__, "height": a.height, "width": a.width, "frames": a.frames, "steps": a.steps,
        "tile": tile, "overlap": a.overlap, "windows": windows, "decode_chunk": a.decode_chunk,
        "decode": not a.skip_decode, "hjb_iterations": a.hjb, "hjb_mode": a.hjb_mode if a.hjb else None,
        "dtype": a.dtype, "repeats": a.repeats, "warmup": warmup, "warmup_steps": min(a.warmup_steps, a.steps),
        "seed": a.seed, "reference_variant": ref, "architecture": "tiny" if a.tiny else "full-size",
        "gpu_memory_cap_gb": a.gpu_memory_gb,
        "memory_method": "torch.cuda.max_memory_allocated above the stage start (reset per stage)"
        if device.type == "cuda" else "peak RSS growth per stage, sampled every 1 ms from /proc/self/statm "
                                      "after malloc_trim (approximate)",
        "flops_method": "FlopCounterMode on meta with the real shapes (matmul/conv/SDPA; elementwise not counted)",
    }
    return {"info": info, "matmul_ceiling": ceilings, "flops_counted": flops, "results": rows}


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _fmt(s: Optional[dict], width: int = 17) -> str:
    if not s:
        return f"{'-':>{width}s}"
    return f"{s['median']:7.2f} [{s['min']:.1f}-{s['max']:.1f}]".rjust(width)


def format_table(report: dict) -> str:
    i = report["info"]
    ref = i["reference_variant"]
    ceil = ", ".join(f"{k} {v['tflops']:.3f} TFLOP/s (n={v['n']}; start {v.get('tflops_start', v['tflops']):.3f},"
                     f" end {v.get('tflops_end', v['tflops']):.3f})" for k, v in report["matmul_ceiling"].items())
    lines = [
        f"StableAnimator pipeline, {i['device_name']} ({i['device']}, {i['cpu_threads']} threads, load "
        f"{i['load_average_at_start'][0]:.1f}->{i['load_average_at_end'][0]:.1f}), {i['width']}x{i['height']}, "
        f"{i['frames']} frames, {i['steps']} steps, tile {i['tile']} overlap {i['overlap']} ({i['windows']} "
        f"window{'s' if i['windows'] > 1 else ''}), {i['dtype']}, repeats {i['repeats']}"
        + (f", HJB {i['hjb_iterations']} it/step ({i['hjb_mode']})" if i["hjb_iterations"] else ""),
        f"matmul ceiling: {ceil}",
        f"{'variant':36s} {'encode s':>17s} {'step s':>17s} {'decode s':>17s} {'HJB s/it':>17s} {'total s':>17s}"
        f" {'peak GiB':>8s} {'UNet GiB':>8s} {'step TF/s':>9s} {'MFU':>5s}",
    ]
    for r in report["results"]:
        st = r["stages_s"]
        peak = max(r["peak_bytes"].values()) / 2**30 if r["peak_bytes"] else 0
        tf = r.get("tflops", {}).get("step")
        mfu = r.get("mfu_step")
        lines.append(f"{r['label'][:36]:36s} {_fmt(st.get('encode'))} {_fmt(st.get('step'))} {_fmt(st.get('decode'))}"
                     f" {_fmt(r['hjb_iteration_s'])} {_fmt(r['total_s'])} {peak:8.2f} "
                     f"{r['unet_weight_bytes'] / 2**30:8.2f} {tf if tf else 0:9.3f} "
                     f"{(f'{mfu:.0%}' if mfu else '-'):>5s}")
    for r in report["results"]:
        sp = r.get("speedup_vs_" + ref)
        if sp is None:
            continue
        dev = r["deviation_vs_" + ref]
        lines.append(f"{r['label']} vs {ref}: " + ", ".join(f"{k} {x:.2f}x" for k, x in sp.items())
                     + f"; final latents rel L2 {dev['final_latents_rel_l2']:.2e}"
                     + (f", frames rel L2 {dev['frames_rel_l2']:.2e}" if "frames_rel_l2" in dev else "")
                     + (f"; compile first step {r['compile_first_step_s']:.1f} s" if r.get("compile_first_step_s")
                        else "")
                     + (f"; warm-up first step {r['warmup_first_step_s']:.1f} s" if r.get("compile") and
                        r.get("warmup_first_step_s") else ""))
    lines.append("(peak: per-stage maximum of " + ("CUDA allocated memory above the stage start" if i["device"].startswith("cuda")
                 else "sampled RSS growth") + "; ratios = reference median / variant median, >1 is faster)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
