"""Files for the skeleton preview the web extension animates on the DWPose node (web/js/stableanimator.js)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from PIL import Image

from . import comfy_bridge as bridge

PREVIEW_KEY = "stableanimator_pose_preview"
MAX_FRAMES = 48
MAX_SIDE = 320


def _small(image: np.ndarray) -> Image.Image:
    im = Image.fromarray(image)
    scale = MAX_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
    return im


def pose_preview_ui(reference: np.ndarray, skeletons: list[np.ndarray]) -> dict[str, list[dict[str, Any]]]:
    """Save a downscaled reference and up to ``MAX_FRAMES`` skeleton frames into ComfyUI's temp folder and
    return the node's ``ui`` entry naming them (ComfyUI serves temp files at ``/view?type=temp``)."""
    if not bridge.IN_COMFYUI or not skeletons:
        return {}
    folder = f"stableanimator_preview_{uuid.uuid4().hex[:12]}"
    root = bridge.temp_directory() / folder
    root.mkdir(parents=True, exist_ok=True)
    step = max(1, -(-len(skeletons) // MAX_FRAMES))
    _small(reference).save(root / "reference.webp", quality=85)
    names = []
    for i, skeleton in enumerate(skeletons[::step]):
        name = f"skeleton_{i:03d}.webp"
        _small(skeleton).save(root / name, quality=90)
        names.append(name)

    def ref(name: str) -> dict[str, str]:
        return {"filename": name, "subfolder": folder, "type": "temp"}

    return {PREVIEW_KEY: [{"reference": ref("reference.webp"), "frames": [ref(n) for n in names],
                           "frame_step": step, "total_frames": len(skeletons)}]}
