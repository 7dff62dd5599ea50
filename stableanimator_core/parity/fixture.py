"""Reading a parity fixture folder (the format of ``shared/parity``): its weights, inputs and run settings.

Only ``weights/``, ``inputs/`` and each run's settings in ``meta.json`` are read here; the recorded tensors
of a run are the expected answers and are read only by :func:`expected_tensors`, for comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import PIL.Image
import torch

from ..loading.components import load_face_encoder, load_image_encoder, load_pose_net, load_unet, load_vae
from ..loading.bundle import StableAnimatorModels
from ..io.video import frame_files, read_image


def load_gray(path: Path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path).convert("L"))


@dataclass
class FixtureInputs:
    settings: dict[str, Any]  # inputs.json
    reference: np.ndarray  # [H, W, 3] uint8, original size
    reference_mask: Optional[np.ndarray]
    poses: list[np.ndarray]
    face_masks: list[np.ndarray]
    arcface_embedding: np.ndarray


def load_inputs(fixture: Path) -> FixtureInputs:
    inputs = fixture / "inputs"
    settings = json.loads((inputs / "inputs.json").read_text())
    mask_path = inputs / "reference_mask.png"
    faces = inputs / "faces"
    return FixtureInputs(
        settings=settings,
        reference=read_image(inputs / "reference.png"),
        reference_mask=load_gray(mask_path) if mask_path.is_file() else None,
        poses=[read_image(p) for p in frame_files(inputs / "poses")],
        face_masks=[load_gray(p) for p in frame_files(faces)] if faces.is_dir() else [],
        arcface_embedding=np.load(inputs / "arcface_embedding.npy").astype(np.float32),
    )


def run_settings(fixture: Path, run: str) -> dict[str, Any]:
    """The run's settings from its ``meta.json`` (never its recorded results)."""
    meta = json.loads((fixture / run / "meta.json").read_text())
    keys = ("pipeline", "tile_size", "tile_overlap", "num_frames", "steps", "refine")
    return {k: meta.get(k) for k in keys}


def load_models(fixture: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> StableAnimatorModels:
    """The fixture's tiny models, loaded by the same functions that load the released checkpoints."""
    w = fixture / "weights"
    cfg = json.loads((w / "configs.json").read_text())
    face_embedder = None
    if (w / "face_embedding_extractor.safetensors").is_file():
        from ..loading.components import load_face_embedder

        face_embedder = load_face_embedder(w / "face_embedding_extractor.safetensors", device)
    return StableAnimatorModels(
        unet=load_unet(w / "unet.safetensors", cfg["unet"], dtype, device),
        pose_net=load_pose_net(w / "pose_net.safetensors", dtype, device),
        face_encoder=load_face_encoder(w / "face_encoder.safetensors", dtype, device),
        vae=load_vae(w / "vae.safetensors", cfg["vae"], device),
        image_encoder=load_image_encoder(w / "image_encoder.safetensors", cfg["image_encoder"], dtype, device),
        scheduler_config=cfg.get("scheduler"),
        face_embedder=face_embedder,
    )


def expected_tensors(fixture: Path, run: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(fixture / run / "tensors.safetensors"))
