"""Where the weights live: the official Hugging Face layout under a ComfyUI-style ``models`` folder.

    <models>/stableanimator/               a download of huggingface.co/FrancisRing/StableAnimator
        Animation/unet.pth, pose_net.pth, face_encoder.pth, glintr100_torch.pth   (.safetensors copies work too)
        DWPose/yolox_l.onnx, dw-ll_ucoco_384.onnx
        SVD/  (diffusers stable-video-diffusion-img2vid-xt: feature_extractor, image_encoder, scheduler, unet, vae)
    <models>/insightface/models/antelopev2/*.onnx     shared with InstantID / IPAdapter FaceID users

The SVD folder may also be ``stableanimator/stable-video-diffusion-img2vid-xt`` (the name app.py uses) or
``diffusers/stable-video-diffusion-img2vid-xt`` (ComfyUI's diffusers folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..errors import CheckpointError
from .catalogue import (ANIMATION_WEIGHTS, DWPOSE_DETECTOR, DWPOSE_ESTIMATOR, INSIGHTFACE_FOLDER, STABLEANIMATOR_FOLDER,
                        STABLEANIMATOR_SOURCE, SVD_FOLDER_CANDIDATES)

PACK_ROOT = Path(__file__).resolve().parents[2]
DOWNLOAD_SCRIPT = "download_models.py"


def default_models_dir(pack_root: Path = PACK_ROOT) -> Path:
    """ComfyUI's models folder when the pack sits in ComfyUI/custom_nodes/, else ``./models``."""
    if pack_root.parent.name == "custom_nodes":
        return pack_root.parent.parent / "models"
    return Path("models")


def download_command(models: Optional[str | os.PathLike] = None) -> str:
    """The command that downloads the weights, runnable from any folder (the script's absolute path)."""
    import shlex

    cmd = f"python {shlex.quote(str(PACK_ROOT / DOWNLOAD_SCRIPT))}"
    return cmd + (f" --models {shlex.quote(str(models))}" if models is not None else "")

__all__ = ["INSIGHTFACE_FOLDER", "STABLEANIMATOR_FOLDER", "ModelLayout", "default_models_dir", "download_command",
           "is_svd_folder"]


def is_svd_folder(path: Path) -> bool:
    return (path / "vae" / "config.json").is_file() and (path / "image_encoder" / "config.json").is_file()


def _first_existing(candidates: Iterable[Path]) -> Optional[Path]:
    return next((p for p in candidates if p.exists()), None)


def animation_file(folder: Path, stem: str) -> Path:
    """``<stem>.pth`` or ``<stem>.safetensors`` in ``folder`` (the .pth name when neither exists)."""
    return _first_existing([folder / f"{stem}.safetensors", folder / f"{stem}.pth"]) or folder / f"{stem}.pth"


@dataclass(frozen=True)
class ModelLayout:
    unet: Path
    pose_net: Path
    face_encoder: Path
    face_embedder: Path
    svd: Path
    dwpose_detector: Path
    dwpose_estimator: Path
    insightface_root: Path

    @classmethod
    def from_models_dir(cls, models_dir: str | os.PathLike) -> "ModelLayout":
        root = Path(models_dir)
        sa = root / STABLEANIMATOR_FOLDER
        svd = _first_existing([root.joinpath(*c) for c in SVD_FOLDER_CANDIDATES if is_svd_folder(root.joinpath(*c))])
        return cls(
            **{m.slot: animation_file(sa / m.folder, m.stem) for m in ANIMATION_WEIGHTS},
            svd=svd or sa.joinpath(*SVD_FOLDER_CANDIDATES[0][1:]),
            **{m.slot: sa / m.path for m in (DWPOSE_DETECTOR, DWPOSE_ESTIMATOR)},
            insightface_root=root / INSIGHTFACE_FOLDER,
        )

    def missing(self, parts: Iterable[str]) -> list[str]:
        """Human-readable list of the required files that are absent."""
        out = []
        for part in parts:
            path = getattr(self, part)
            if part == "svd":
                if not is_svd_folder(path):
                    out.append(f"{path} (the SVD-xt diffusers folder with vae/ and image_encoder/)")
            elif part == "insightface_root":
                pack = path / "models" / "antelopev2"
                if not any(pack.glob("*.onnx")):
                    out.append(f"{pack}/*.onnx (the insightface antelopev2 pack)")
            elif not path.is_file():
                out.append(str(path))
        return out

    def require(self, parts: Iterable[str]) -> "ModelLayout":
        missing = self.missing(parts)
        if missing:
            raise CheckpointError(
                "StableAnimator weights are missing:\n  " + "\n  ".join(missing)
                + f"\nRun `{download_command(self.insightface_root.parent)}` or download "
                  f"{STABLEANIMATOR_SOURCE} into <ComfyUI>/models/{STABLEANIMATOR_FOLDER}/ "
                  "(see the README, section Models)."
            )
        return self
