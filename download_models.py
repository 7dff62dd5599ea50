"""Download the StableAnimator weights (and insightface's antelopev2) into ComfyUI's models folder.

From the ComfyUI folder:

    python custom_nodes/ComfyUI-StableAnimator/download_models.py

With the pack inside ComfyUI/custom_nodes/ the files go to ComfyUI/models/ wherever this is run from; elsewhere,
or to use another folder, pass --models PATH. Files already present are kept (--force downloads them again).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run by its path, Python puts this folder on sys.path, so the pack's core package imports as it is. abspath, not
# resolve(): a pack linked into custom_nodes/ still finds the ComfyUI models folder beside it.
from stableanimator_core.cli import main
from stableanimator_core.loading.layout import default_models_dir

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--models" or a.startswith("--models=") for a in args) and "-h" not in args \
            and "--help" not in args:
        args = ["--models", str(default_models_dir(Path(os.path.abspath(__file__)).parent)), *args]
    raise SystemExit(main(["download", *args]))
