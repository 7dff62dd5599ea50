"""Fetching the released weights into the layout of :mod:`layout` (explicit command only; never at import).

* StableAnimator (``Animation/``, ``DWPose/``, ``SVD/`` minus the unused SVD UNet weights) from the Hugging Face
  repository ``FrancisRing/StableAnimator`` into ``<models>/stableanimator``;
* insightface's antelopev2 pack into ``<models>/insightface/models/antelopev2`` (its zip nests the folder one
  level too deep, the cause of the official ``assert 'detection' in self.models``; it is flattened here).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DependencyError, StableAnimatorError
from .catalogue import (ANIMATION_WEIGHTS, ANTELOPEV2_REQUIRED, ANTELOPEV2_URL, DWPOSE_MODELS,
                        HF_REPO_ID, INSIGHTFACE_FOLDER, STABLEANIMATOR_FOLDER)

log = logging.getLogger(__name__)

# Only what inference reads: the SVD UNet weights (replaced by Animation/unet.pth) and the original SGM
# checkpoints are skipped, saving about 10 GB.
HF_ALLOW_PATTERNS = [
    "Animation/*", "DWPose/*",
    "SVD/feature_extractor/*", "SVD/image_encoder/*", "SVD/scheduler/*", "SVD/vae/*",
    "SVD/unet/config.json", "SVD/model_index.json",
]


@dataclass
class DownloadPlan:
    stableanimator_dir: Path
    antelopev2_dir: Path
    need_stableanimator: bool
    need_antelopev2: bool


def plan(models_dir: str | Path, force: bool = False) -> DownloadPlan:
    """What is missing under ``models_dir``; existing downloads are kept unless ``force``."""
    from .layout import ModelLayout

    root = Path(models_dir)
    layout = ModelLayout.from_models_dir(root)
    sa_missing = layout.missing([m.slot for m in (*ANIMATION_WEIGHTS, *DWPOSE_MODELS)] + ["svd"])
    ante = root / INSIGHTFACE_FOLDER / "models" / "antelopev2"
    ante_missing = [f for f in ANTELOPEV2_REQUIRED if not (ante / f).is_file()]
    return DownloadPlan(root / STABLEANIMATOR_FOLDER, ante, force or bool(sa_missing), force or bool(ante_missing))


def flatten_antelopev2(extracted: Path, target: Path) -> list[Path]:
    """Move the ``*.onnx`` files found anywhere under ``extracted`` into ``target`` (no nested folder)."""
    target.mkdir(parents=True, exist_ok=True)
    moved = []
    for onnx in sorted(extracted.rglob("*.onnx")):
        dest = target / onnx.name
        shutil.move(str(onnx), dest)
        moved.append(dest)
    if not any(p.name == "scrfd_10g_bnkps.onnx" for p in moved):
        raise StableAnimatorError(f"the antelopev2 archive held no scrfd_10g_bnkps.onnx (found {[p.name for p in moved]})")
    return moved


def fix_nested_antelopev2(antelopev2_dir: Path) -> bool:
    """Repair the common ``antelopev2/antelopev2/*.onnx`` layout in place; True if something was moved."""
    nested = antelopev2_dir / "antelopev2"
    if nested.is_dir() and any(nested.glob("*.onnx")):
        flatten_antelopev2(nested, antelopev2_dir)
        shutil.rmtree(nested, ignore_errors=True)
        return True
    return False


def _progress_hook(name: str) -> Callable[[int, int, int], None]:
    from tqdm import tqdm

    bar = tqdm(total=0, unit="B", unit_scale=True, desc=name)

    def hook(blocks: int, block_size: int, total: int) -> None:
        if total > 0:
            bar.total = total
        bar.update(blocks * block_size - bar.n)

    return hook


def fetch_url(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    urllib.request.urlretrieve(url, dest, reporthook=_progress_hook(dest.name))  # noqa: S310 - fixed https URL
    return dest


def download_stableanimator(dest: Path) -> None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise DependencyError("downloading needs huggingface_hub: pip install huggingface_hub") from exc
    snapshot_download(repo_id=HF_REPO_ID, local_dir=str(dest), allow_patterns=HF_ALLOW_PATTERNS)


def download_antelopev2(dest: Path, fetch: Callable[[str, Path], Path] = fetch_url) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = fetch(ANTELOPEV2_URL, Path(tmp) / "antelopev2.zip")
        with zipfile.ZipFile(archive) as z:
            z.extractall(Path(tmp) / "x")
        return flatten_antelopev2(Path(tmp) / "x", dest)


def run_download(models_dir: str | Path, force: bool = False,
                 stableanimator: Callable[[Path], None] = download_stableanimator,
                 antelopev2: Callable[[Path], object] = download_antelopev2) -> DownloadPlan:
    """Download what is missing; the two fetchers are parameters so the layout logic is testable offline."""
    p = plan(models_dir, force)
    if p.antelopev2_dir.is_dir() and fix_nested_antelopev2(p.antelopev2_dir):
        log.info("moved antelopev2 out of its nested folder: %s", p.antelopev2_dir)
        p = plan(models_dir, force)
    if p.need_stableanimator:
        log.info("downloading %s into %s", HF_REPO_ID, p.stableanimator_dir)
        stableanimator(p.stableanimator_dir)
    else:
        log.info("StableAnimator weights already present in %s", p.stableanimator_dir)
    if p.need_antelopev2:
        log.info("downloading antelopev2 into %s", p.antelopev2_dir)
        antelopev2(p.antelopev2_dir)
    else:
        log.info("antelopev2 already present in %s", p.antelopev2_dir)
    return p
