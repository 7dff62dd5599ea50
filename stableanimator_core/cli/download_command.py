"""``download``: the released weights into a ComfyUI-style models folder (see stableanimator_core.download)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="models",
                        help="models folder (e.g. ComfyUI/models): stableanimator/ and insightface/ go inside")
    parser.add_argument("--force", action="store_true", help="download again even if the files exist")


def run(args: argparse.Namespace) -> int:
    from ..loading.download import run_download

    p = run_download(args.models, force=args.force)
    print(f"StableAnimator weights: {p.stableanimator_dir}\nantelopev2: {p.antelopev2_dir}")
    return 0
