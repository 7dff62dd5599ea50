"""Sub-command dispatcher for ``python -m stableanimator_core``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
The modules import only argparse at their top level (torch, onnxruntime, PyAV load inside ``run``), so
``--help`` stays fast and a missing optional dependency of one command does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from ..errors import StableAnimatorError, is_cpu_allocation_failure

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "animate": ("animate_command", "reference photo + driving video -> animated mp4"),
    "pose": ("pose_command", "DWPose skeletons of a driving video, aligned to a reference image"),
    "download": ("download_command", "download the released weights into a models folder"),
    "batch": ("batch_command", "many animations from a JSONL file of jobs, on Ray (local or a cluster)"),
}


DESCRIPTION = """StableAnimator without ComfyUI: animate a reference photo with the poses of a driving video, keeping
the person's identity. Each command has its own help: python -m stableanimator_core COMMAND --help"""
EXAMPLES = """examples:
  download the released weights (several GB) into ComfyUI's models folder:
    python -m stableanimator_core download --models ComfyUI/models
  animate (add --hjb for the face identity optimisation; a GPU is strongly advised at 512x512):
    python -m stableanimator_core animate --models ComfyUI/models --reference photo.png --driving dance.mp4 \\
        --out animation.mp4
  check the pose alignment first (skeleton frames as PNGs):
    python -m stableanimator_core pose --reference photo.png --driving dance.mp4 --out poses/ \\
        --detector ComfyUI/models/stableanimator/DWPose/yolox_l.onnx \\
        --estimator ComfyUI/models/stableanimator/DWPose/dw-ll_ucoco_384.onnx

Models layout, workflows and troubleshooting: see the README."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stableanimator_core", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        _load(module_name).add_arguments(p)
    return parser


def _load(module_name: str):
    return importlib.import_module(f"{__name__}.{module_name}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(_load(args._module).run(args) or 0)
    except StableAnimatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if is_cpu_allocation_failure(exc):
            print("error: out of memory (RAM). Use fewer frames (--max-frames, --frame-stride), a smaller --width/"
                  "--height, a smaller --tile-size or --decode-chunk-size, or close other programs. "
                  f"({str(exc).splitlines()[0][:160]})", file=sys.stderr)
            return 3
        if args.verbose:
            raise
        # an unforeseen failure still ends in one line; -v shows the traceback for a bug report
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''} "
              f"(run with -v for the traceback)", file=sys.stderr)
        return 1
