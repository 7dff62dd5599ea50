"""``python -m stableanimator_core.testing make-tiny-models DIR``: a tiny random models folder (tests, demos)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stableanimator_core.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-tiny-models", help="write tiny random models in the official layout")
    p.add_argument("dir", help="models folder to write (ComfyUI-style: stableanimator/ and insightface/ inside)")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .tiny_models import make_tiny_models

    layout = make_tiny_models(args.dir, seed=args.seed)
    print(f"tiny models written to {args.dir} (SVD folder {layout.svd})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
