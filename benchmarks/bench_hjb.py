#!/usr/bin/env python
"""Time and memory of one HJB face-optimisation iteration, per mode, on full-size architectures.

Models: the SVD-xt temporal VAE (config from the parity fixture's ``fullsize_keys.json``) and ArcFace iresnet100,
with random weights under a fixed seed (time and memory do not depend on weight values). Inputs: random x0
latents, a face box about a quarter of the frame wide drifting across frames, a random reference embedding.

  python benchmarks/bench_hjb.py --height 256 --width 256 --frames 4 --iterations 1 --device cpu
  python benchmarks/bench_hjb.py --device cuda --height 512 --width 512 --frames 16 --baseline /path/to/StableAnimator

``--baseline PATH`` imports the official ``EulerDiscreteSchedulerPro`` and ``RefinedAutoencoderKLTemporalDecoder``
from an official checkout (never copied), enables the decoder's gradient checkpointing as ``inference_op.py
--gradient_checkpointing`` does, loads the same weights and times its refine step on the same inputs, interleaved
with the pack's modes. Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the peak resident-set
growth during the call, sampled every millisecond by a background thread from /proc/self/statm after glibc
``malloc_trim`` (short spikes between samples can be missed).

faithful and memory_bounded always run in fp32 (they are exact); ``--dtype`` is fast mode's compute dtype.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Callable, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stableanimator_core.hjb import FaceRefiner, HJBSettings  # noqa: E402
from stableanimator_core.hjb.decode import conv_receptive_radius  # noqa: E402
from stableanimator_core.hjb.settings import parse_dtype  # noqa: E402
from stableanimator_core.models.iresnet import IResNet, iresnet100  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_measure import StageClock  # noqa: E402
from bench_models import fullsize_configs, synthetic_face_boxes, tiny_configs  # noqa: E402

# ----------------------------------------------------------------------------- models and inputs

def vae_config(tiny: bool = False) -> dict:
    return (tiny_configs() if tiny else fullsize_configs())["vae"]


def build_models(device: torch.device, seed: int, tiny: bool = False):
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**vae_config(tiny)).eval().requires_grad_(False)
    face_net = (IResNet(tiny_configs()["face_embedder"]["layers"]) if tiny else iresnet100()).eval()
    return vae.to(device), face_net.requires_grad_(False).to(device)


def make_inputs(frames: int, height: int, width: int, seed: int, device: torch.device):
    g = torch.Generator().manual_seed(seed + 1)
    x0 = torch.randn(1, frames, 4, height // 8, width // 8, generator=g).to(device)
    reference = torch.randn(1, 512, generator=g).to(device)
    return x0, synthetic_face_boxes(frames, height, width), reference


# ----------------------------------------------------------------------------- measurement

def timed(fn: Callable[[], torch.Tensor], clock: StageClock) -> tuple[float, int, torch.Tensor]:
    """Seconds, peak extra memory (bytes) and result of one call (see bench_measure.StageClock)."""
    clock.start("hjb")
    out = fn()
    clock.stop()
    record = clock.take()[-1]
    return record.seconds, record.peak_bytes, out


# ----------------------------------------------------------------------------- the official baseline

def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_refiner(path: Path, vae, face_net, x0, boxes, reference_image_emb, iterations: int, device):
    """A callable running the official ``EulerDiscreteSchedulerPro.step(refine_face=True)`` on our x0."""
    path = Path(path).resolve()
    sys.path.insert(0, str(path))
    euler = _import_file("sa_official_euler", path / "animation/pipelines/euler_discrete_pro.py")
    refined_vae = _import_file("sa_official_refined_vae", path / "animation/modules/refined_vae.py")
    backbones = _import_file("sa_official_iresnet", path / "animation/helper/backbones/iresnet.py")

    off_vae = refined_vae.RefinedAutoencoderKLTemporalDecoder(**vae_config())
    off_vae.load_state_dict(vae.state_dict(), strict=True)
    off_vae.requires_grad_(False)  # inference_op.py:353
    off_vae.decoder.gradient_checkpointing = True  # what --gradient_checkpointing switches on
    off_vae.to(device).eval()
    off_net = backbones.iresnet100(fp16=False)
    off_net.load_state_dict(face_net.state_dict(), strict=True)
    off_net.to(device).eval()  # parameters left requiring grad, as in inference_op.py

    scheduler = euler.EulerDiscreteSchedulerPro(prediction_type="v_prediction", use_karras_sigmas=True,
                                                timestep_type="continuous", sigma_min=0.002, sigma_max=700.0)
    scheduler.set_timesteps(25, device=device)
    scheduler.init_face_model(face_embedding_extractor=off_net)
    # choose sample/model_output so that the scheduler's x0 is our x0: with v = 0, x0 = x / (sigma^2 + 1)
    sigma = scheduler.sigmas[0].to(device)
    sample = x0 * (sigma**2 + 1)
    model_output = torch.zeros_like(x0)
    boxes = [list(b) for b in boxes]

    def run() -> torch.Tensor:
        scheduler._step_index = None
        scheduler.is_scale_input_called = True
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every iteration
            out = scheduler.step(model_output, scheduler.timesteps[0], sample, return_dict=True, refine_face=True,
                                 learning_rate=0.1, num_optimization_iter=iterations,
                                 refine_reference_face_embeddings=reference_image_emb, vae=off_vae,
                                 decode_chunk_size=4, image_processor=None, output_type=None, device=device,
                                 target_face_mask_list=boxes)
        return out.pred_original_sample

    return run


# ----------------------------------------------------------------------------- main

def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--iterations", type=int, default=1, help="Adam iterations per timed call")
    p.add_argument("--dtype", default="bf16", help="fast mode's compute dtype: bf16, fp16, fp32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default="faithful,memory_bounded,fast")
    p.add_argument("--chunk", type=int, default=4, help="decode chunk size (official: 4)")
    p.add_argument("--margin", type=int, default=None, help="fast mode margin in latent pixels (default: receptive radius)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per variant (default: 1 on CUDA, 0 on CPU)")
    p.add_argument("--baseline", type=Path, default=None, help="official StableAnimator checkout to compare with")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--tiny", action="store_true", help="tiny VAE and IResNet (checks that the code runs)")
    p.add_argument("--exact-cpu-memory", action="store_true",
                   help="CPU: re-run with glibc's mmap threshold fixed at 64 KiB, so freed tensors leave the RSS at "
                        "once and the sampled peak tracks live memory (slows allocation a little)")
    args = p.parse_args(argv)
    if args.exact_cpu_memory and os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + (argv or sys.argv[1:]))

    device = torch.device(args.device)
    fast_dtype = parse_dtype(args.dtype)
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)
    if args.tiny and args.baseline is not None:
        raise SystemExit("--tiny cannot be combined with --baseline (the official models are built full-size)")
    vae, face_net = build_models(device, args.seed, args.tiny)
    x0, boxes, reference = make_inputs(args.frames, args.height, args.width, args.seed, device)
    margin = args.margin if args.margin is not None else conv_receptive_radius(vae.decoder)

    variants: dict[str, Callable[[], torch.Tensor]] = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        settings = HJBSettings(num_iterations=args.iterations, mode=mode, decode_chunk_size=args.chunk,
                               fast_dtype=fast_dtype, fast_margin=margin)
        refiner = FaceRefiner(vae, face_net, reference, boxes, settings)
        variants[mode] = (lambda r=refiner: r.refine(x0, 0.1)[0])
    if args.baseline is not None:
        variants["official"] = official_refiner(args.baseline, vae, face_net, x0, boxes, reference,
                                                args.iterations, device)

    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, list[int]] = {k: [] for k in variants}
    outputs: dict[str, torch.Tensor] = {}
    for name, fn in variants.items():
        for _ in range(warmup):
            fn()
    clock = StageClock(device)
    for _ in range(args.repeats):  # interleaved A/B/A/B so drift hits every variant alike
        for name, fn in variants.items():
            seconds, peak, out = timed(fn, clock)
            times[name].append(seconds / args.iterations)
            peaks[name].append(peak)
            outputs[name] = out.detach().float().cpu()
            print(f"  {name:15s} {seconds / args.iterations:9.3f} s/iter  peak {peak / 2**30:7.3f} GiB", flush=True)

    ref_name = "official" if "official" in variants else ("faithful" if "faithful" in variants else None)
    x0_cpu = x0.float().cpu()
    rows = []
    for name in variants:
        med = statistics.median(times[name])
        row = {"variant": name, "s_per_iter_median": med, "s_per_iter_min": min(times[name]),
               "s_per_iter_max": max(times[name]), "peak_gib": max(peaks[name]) / 2**30}
        if ref_name and name != ref_name:
            row["speedup_vs_" + ref_name] = statistics.median(times[ref_name]) / med
            row["memory_ratio_vs_" + ref_name] = max(peaks[name]) / max(1, max(peaks[ref_name]))
            # how far this variant's x0 update is from the reference variant's (0 = identical)
            delta_ref = outputs[ref_name] - x0_cpu
            diff = outputs[name] - outputs[ref_name]
            row["x0_update_rel_l1_vs_" + ref_name] = float(diff.abs().mean() / delta_ref.abs().mean())
            row["x0_update_sign_agreement_vs_" + ref_name] = float(
                ((outputs[name] - x0_cpu).sign() == delta_ref.sign()).float().mean())
        rows.append(row)

    info = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__, "architecture": "tiny" if args.tiny else "full-size",
            "height": args.height, "width": args.width, "frames": args.frames,
            "iterations": args.iterations, "chunk": args.chunk, "fast_dtype": str(fast_dtype),
            "fast_margin_latent_px": margin, "repeats": args.repeats, "warmup": warmup,
            "memory_method": "torch.cuda.max_memory_allocated" if device.type == "cuda"
            else "sampled RSS growth (/proc/self/statm, 1 ms, after malloc_trim)"
            + (", mmap threshold 64 KiB" if os.environ.get("MALLOC_MMAP_THRESHOLD_") == "65536" else ""),
            "baseline": "official EulerDiscreteSchedulerPro + RefinedAutoencoderKLTemporalDecoder (checkpointed)"
            if args.baseline else None}
    print(f"\nHJB iteration, {args.frames} frames {args.width}x{args.height}, {info['device_name']} ({device.type}), "
          f"fast={args.dtype} margin={margin}")
    print(f"{'variant':15s} {'s/iter':>9s} {'peak GiB':>9s} {'speedup':>8s} {'mem ratio':>9s} {'x0 rel L1':>9s}")
    for row in rows:
        sp = row.get(f"speedup_vs_{ref_name}")
        mr = row.get(f"memory_ratio_vs_{ref_name}")
        dv = row.get(f"x0_update_rel_l1_vs_{ref_name}")
        print(f"{row['variant']:15s} {row['s_per_iter_median']:9.3f} {row['peak_gib']:9.3f} "
              f"{'' if sp is None else f'{sp:.2f}x':>8s} {'' if mr is None else f'{mr:.2f}':>9s} "
              f"{'' if dv is None else f'{dv:.2e}':>9s}")
    if ref_name:
        print(f"(ratios vs {ref_name}; x0 rel L1 = mean|x0_variant - x0_{ref_name}| / mean|x0_{ref_name} - x0|)")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
