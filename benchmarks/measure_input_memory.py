#!/usr/bin/env python
"""Peak RAM of the work that grows with the video's length, on the tiny random models (CPU).

* ``animate``: the ``animate`` command on a long 256x256 driving video (the example clip looped), in a child
  process; its peak resident memory (``ru_maxrss``) and stage timings.
* ``nodes``: the DWPose and Conditioning nodes called as ComfyUI calls them on an IMAGE batch of N frames; the
  peak resident memory above the inputs (the float32 IMAGE batch ComfyUI itself holds).

``--repo`` runs another checkout's code (e.g. the previous main) on the same inputs, for before/after figures.

  python benchmarks/measure_input_memory.py animate --frames 1500 --models /tmp/tiny
  python benchmarks/measure_input_memory.py nodes --frames 100 --size 512 --models /tmp/tiny
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "example_workflows" / "inputs"


def _example_frames(size: int):
    import av
    import numpy as np
    from PIL import Image

    with av.open(str(INPUTS / "stableanimator_driving.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return [np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames]


def make_driving(path: Path, frames: int, size: int, fps: int = 25) -> Path:
    """The example clip looped back and forth to ``frames`` frames, H.264, written one frame at a time."""
    from fractions import Fraction

    import av

    clip = _example_frames(size)
    loop = clip + clip[-2:0:-1]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "30", "preset": "ultrafast"}
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def measure_animate(args) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    driving = work / f"driving_{args.frames}_{args.size}.mp4"
    if not driving.is_file():
        make_driving(driving, args.frames, args.size)
    out = work / f"out_{args.frames}.mp4"
    cmd = [sys.executable, "-m", "stableanimator_core", "animate", "--models", str(args.models),
           "--reference", str(INPUTS / "stableanimator_reference.png"), "--driving", str(driving), "--out", str(out),
           "--width", str(args.size), "--height", str(args.size), "--steps", str(args.steps), "--precision", "fp32"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=args.repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"animate failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"what": "animate", "repo": str(args.repo), "frames": args.frames, "size": args.size, "steps": args.steps,
            "peak_rss_gib": round(peak_kib / 2**20, 3), "wall_s": round(wall, 1),
            "stdout": proc.stdout.strip().splitlines()[-1:], "warnings": [l for l in proc.stderr.splitlines()
                                                                         if "GiB" in l]}


def _rss_peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rss_now_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def measure_nodes_child(args) -> dict:
    """Runs inside a fresh process (so ``ru_maxrss`` is this measurement's own)."""
    import importlib.util

    import numpy as np
    import torch

    os.environ["STABLEANIMATOR_MODELS_DIR"] = str(args.models)
    name = "measure_pack"
    spec = importlib.util.spec_from_file_location(name, Path(args.repo) / "__init__.py",
                                                  submodule_search_locations=[str(args.repo)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)
    nodes = pack.nodes.NODE_CLASS_MAPPINGS

    clip = _example_frames(args.size)
    count = len(clip) if args.stages == "conditioning" else args.frames
    driving = torch.empty((count, args.size, args.size, 3))
    for i in range(count):
        driving[i] = torch.from_numpy(clip[i % len(clip)]).float() / 255
    from PIL import Image

    ref = np.asarray(Image.open(INPUTS / "stableanimator_reference.png").convert("RGB").resize((args.size, args.size)))
    reference = torch.from_numpy(ref).float()[None] / 255
    loader = nodes["StableAnimatorModelLoader"]
    model = loader().load("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth",
                          "stableanimator/SVD", "fp32")[0]
    payloads = pack.nodes.payloads
    face = payloads.FaceIdentity(embedding=np.linspace(-1, 1, 512).astype(np.float32), box=None,
                                image_hw=(args.size, args.size))
    clip_embeds = nodes["StableAnimatorCLIPEncode"]().encode(model, reference)[0]

    def dwpose(frames):
        out = nodes["StableAnimatorDWPose"]().extract(frames, reference, "DWPose/yolox_l.onnx",
                                                      "DWPose/dw-ll_ucoco_384.onnx", "global", "empty", "largest",
                                                      "skeleton", "cpu")
        return (out["result"] if isinstance(out, dict) else out)[0]

    if args.stages == "conditioning":
        # real skeletons of the example clip, repeated: the batch a DWPose node hands over (held by ComfyUI)
        clip_skeletons = dwpose(driving)
        reps = -(-args.frames // len(clip))
        skeletons = clip_skeletons.repeat(reps, 1, 1, 1)[: args.frames].contiguous()
        del driving
    base = _rss_now_gib()
    peak_before = _rss_peak_gib()
    t0 = time.perf_counter()
    if args.stages != "conditioning":
        skeletons = dwpose(driving)
    after_dwpose = _rss_now_gib()
    cond = nodes["StableAnimatorConditioning"]().condition(model, reference, clip_embeds, face, skeletons, args.size,
                                                           args.size, 7, 127, 0.02, 23123134)
    after_cond = _rss_now_gib()
    wall = time.perf_counter() - t0
    peak = _rss_peak_gib()
    return {"what": "nodes", "stages": args.stages, "repo": str(args.repo), "frames": args.frames, "size": args.size,
            "input_batch_gib": round(args.frames * args.size * args.size * 3 * 4 / 2**30, 3),
            "rss_before_gib": round(base, 3), "peak_rss_gib": round(peak, 3),
            "peak_above_inputs_gib": round(peak - base, 3) if peak > peak_before else None,
            "held_after_dwpose_gib": round(after_dwpose - base, 3), "held_after_conditioning_gib":
                round(after_cond - base, 3), "skeletons": [str(skeletons.dtype), list(skeletons.shape)],
            "wall_s": round(wall, 1), "frames_out": int(cond[1]["samples"].shape[0])}


def measure_nodes(args) -> dict:
    cmd = [sys.executable, __file__, "nodes-child", "--frames", str(args.frames), "--size", str(args.size),
           "--models", str(args.models), "--repo", str(args.repo), "--stages", args.stages]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("animate", "nodes", "nodes-child"))
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--models", type=Path, required=True, help="a tiny models folder (make-tiny-models)")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout whose code runs (default: this one)")
    p.add_argument("--stages", choices=("dwpose+conditioning", "conditioning"), default="dwpose+conditioning",
                   help="conditioning: skeletons of the example clip repeated, only the Conditioning node measured")
    p.add_argument("--work", type=Path, default=Path("/tmp/stableanimator_memory"))
    args = p.parse_args()
    if args.what == "animate":
        result = measure_animate(args)
    elif args.what == "nodes":
        result = measure_nodes(args)
    else:
        result = measure_nodes_child(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
