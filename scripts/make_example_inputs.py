"""Regenerates example_workflows/inputs/ (run from the repository root: python -m scripts.make_example_inputs): the bundled reference photo and driving clip used by the example workflows.

Both come from scikit-image's astronaut photo (Eileen Collins, NASA, public domain). The driving clip is the
same photo moved by a small smooth affine motion (no real human video ships in any installable package).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "example_workflows" / "inputs"


def main() -> None:
    from skimage import data

    from stableanimator_core.io.video import write_mp4

    photo = Image.fromarray(data.astronaut())  # 512x512 RGB
    OUT.mkdir(parents=True, exist_ok=True)
    photo.resize((320, 320), Image.LANCZOS).save(OUT / "stableanimator_reference.png", optimize=True)
    frames = []
    for i in range(16):
        t = 2 * math.pi * i / 16
        angle, dx, dy, scale = 4 * math.sin(t), 12 * math.sin(t), 6 * math.cos(t), 1.0 + 0.03 * math.sin(2 * t)
        moved = photo.rotate(angle, resample=Image.BICUBIC, translate=(dx, dy), fillcolor=(0, 0, 0))
        moved = moved.resize((int(512 * scale),) * 2, Image.BICUBIC).crop((0, 0, 512, 512))
        frames.append(np.asarray(moved.resize((256, 256), Image.LANCZOS)))
    write_mp4(OUT / "stableanimator_driving.mp4", frames, fps=8, crf=28)


if __name__ == "__main__":
    main()
