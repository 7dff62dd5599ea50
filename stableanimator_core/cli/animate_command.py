"""``animate``: reference photo + driving video -> identity-preserving animation (H.264 mp4)."""

from __future__ import annotations

import argparse
from pathlib import Path

# defaults come from the one settings model (no torch behind these imports, so --help stays fast)
from ..loading.catalogue import PROVIDER_CHOICES
from ..sampling.controls import OFFICIAL as OFFICIAL_TERM
from ..settings import CONDITIONING, SAMPLER


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``animate``, one declaration each (a long function by design: it reads as the command's
    reference, in the order of ``--help``)."""
    p.add_argument("--reference", required=True, type=Path, help="the photo of the person to animate")
    p.add_argument("--driving", required=True, type=Path,
                   help="driving video, or a folder of frame_<i>.png (ordered by i)")
    p.add_argument("--out", required=True, type=Path, help="output .mp4")
    p.add_argument("--models", type=Path, default=Path("models"),
                   help="models folder holding stableanimator/ and insightface/ (e.g. ComfyUI/models)")
    p.add_argument("--width", type=int, default=CONDITIONING.width, help="multiple of 64; trained at 512x512 and 576x1024")
    p.add_argument("--height", type=int, default=CONDITIONING.height)
    p.add_argument("--max-frames", type=int, default=None, help="use at most this many driving frames")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th driving frame")
    p.add_argument("--steps", type=int, default=SAMPLER.steps)
    p.add_argument("--guidance", type=float, default=SAMPLER.max_guidance,
                   help="classifier-free guidance scale, a finite number above 1")
    p.add_argument("--tile-size", type=int, default=SAMPLER.tile_size, help="frames per window (lower = less VRAM)")
    p.add_argument("--tile-overlap", type=int, default=SAMPLER.tile_overlap)
    p.add_argument("--seed", type=int, default=SAMPLER.seed)
    p.add_argument("--fps", type=float, default=None, help="frame rate of the mp4 (default: the driving video's)")
    p.add_argument("--decode-chunk-size", type=int, default=4)
    p.add_argument("--preset", choices=("pack", "official"), default="pack",
                   help="official: every choice below that the pack makes differently takes the official scripts' "
                        "value (see the README's table); options given explicitly still win")
    p.add_argument("--precision", choices=("auto", "official", "fp32", "fp16", "bf16"), default=None,
                   help="auto (pack default): bf16/fp16 on GPUs, fp32 on CPU, VAE in fp32; official: fp16 UNet and "
                        "VAE decoding (inference_basic.py), fp32 everything with --hjb (inference_op.py)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--align", choices=("global", "limbs", "none"), default="global",
                   help="skeleton alignment to the reference body (global = official)")
    p.add_argument("--missing", choices=("empty", "repeat", "error", "whole_image"), default=None,
                   help="driving frames without a person (pack: empty; official: whole_image)")
    p.add_argument("--person", choices=("largest", "confident", "all"), default=None,
                   help="driving frames with several people (pack: largest; official: all)")
    p.add_argument("--min-keypoints", type=int, default=None,
                   help="body keypoints a drawn person needs (pack: 1; official: 0)")
    p.add_argument("--no-identity", action="store_true",
                   help="do not use the reference's ArcFace identity (zero face tokens)")
    p.add_argument("--arcface-channels", choices=("training", "official_inference"), default=None,
                   help="channel order insightface gets (pack: training = BGR; official_inference = RGB, as "
                        "inference_basic.py hands it)")
    p.add_argument("--no-face", choices=("error", "zero_tokens", "official"), default=None,
                   help="no face in the reference (pack: error; zero_tokens: animate without identity; official: "
                        "aligned retry with facexlib where installed, then a zero ArcFace embedding)")
    p.add_argument("--hjb", action="store_true", help="HJB face optimisation (slower, stronger identity)")
    p.add_argument("--hjb-mode", choices=("faithful", "memory_bounded", "fast"), default=None,
                   help="pack: memory_bounded (same result as faithful, bounded memory); official: faithful")
    p.add_argument("--hjb-window", choices=("tiled", "all_frames"), default=None,
                   help="pack: tiled (the sampler's windows); official: all_frames (one window, inference_op.py)")
    p.add_argument("--hjb-boxes", choices=("skeleton", "insightface", "official"), default=None,
                   help="HJB face boxes (pack: skeleton = the aligned face keypoints; insightface = detected on the "
                        "driving frames, moved with the alignment; official = face_mask_extraction.py's masks)")
    p.add_argument("--hjb-iterations", type=int, default=None, help="default: HJBSettings (official 3)")
    p.add_argument("--hjb-start", type=int, default=None, help="default: HJBSettings (official 0)")
    p.add_argument("--hjb-end", type=int, default=None, help="default: HJBSettings (official 20)")
    p.add_argument("--framing", choices=("stretch", "crop", "pad"), default="stretch",
                   help="fit the reference to the video's aspect: stretch (official: squashed), crop, or pad with "
                        "the border colour")
    p.add_argument("--crop-on", choices=("center", "person", "face"), default="center",
                   help="where --framing crop centres its window")
    p.add_argument("--first-frame-fix", action="store_true",
                   help="generate one extra frame on a copy of the first pose and drop it (SVD's blurry first "
                        "frame, official issue #94); the video keeps its length")
    p.add_argument("--id-strength", type=float, default=OFFICIAL_TERM.strength,
                   help="weight of the ArcFace identity (the ID adapter's scale; official 1.0, 0 = off)")
    p.add_argument("--id-start", type=float, default=OFFICIAL_TERM.start_percent, help="identity from this fraction of the steps on")
    p.add_argument("--id-end", type=float, default=OFFICIAL_TERM.end_percent, help="identity up to this fraction of the steps")
    p.add_argument("--pose-strength", type=float, default=OFFICIAL_TERM.strength,
                   help="multiplier of PoseNet's features (official 1.0, 0 = off)")
    p.add_argument("--pose-start", type=float, default=OFFICIAL_TERM.start_percent, help="pose from this fraction of the steps on")
    p.add_argument("--pose-end", type=float, default=OFFICIAL_TERM.end_percent, help="pose up to this fraction of the steps")
    p.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto",
                   help="onnxruntime device for DWPose and ArcFace")
    p.add_argument("--parallel", choices=("auto", "windows", "cfg"), default="auto",
                   help="under torchrun (torchrun --nproc-per-node N -m stableanimator_core animate ...): divide "
                        "each step's windows, or the CFG halves too, among the processes (auto: whichever "
                        "balances better); the video is the single-process one")


_OPTIONAL = ("max_frames", "fps", "device")  # None is a value here (all frames, the source fps, auto)


def options_from_args(args: argparse.Namespace):
    """``AnimateOptions`` from the parsed arguments: the preset's choices where no option was given."""
    from dataclasses import asdict

    from .job import AnimateOptions
    from ..presets import preset_choices

    values = vars(args)
    choices = asdict(preset_choices(args.preset, values))
    given = {k: v for k, v in {**values, **choices}.items() if k in AnimateOptions.__dataclass_fields__}
    # an option left unset (None) takes the settings' default
    return AnimateOptions(**{k: v for k, v in given.items() if v is not None or k in _OPTIONAL})


def run(args: argparse.Namespace) -> int:
    from .job import run_animation

    opts = options_from_args(args)
    path = run_animation(opts)
    if path is not None:  # under torchrun only rank 0 writes
        print(f"wrote {path} ({', '.join(f'{k} {v} s' for k, v in opts.timings.items())})")
    return 0
