"""The one place nodes reach ComfyUI's services through: folders, devices, the memory manager, Cancel and progress,
each a call on the host chosen once at import (:mod:`.hosts`: ComfyUI's, or the standalone one for CI and scripts),
and the model-file helpers written once on top of :func:`folder_roots`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from ..stableanimator_core.loading import catalogue
from . import hosts

HOST = hosts.HOST
IN_COMFYUI = hosts.IN_COMFYUI
Interrupted = hosts.Interrupted  # what check_interrupt raises outside ComfyUI

log = logging.getLogger("StableAnimator")

STABLEANIMATOR_FOLDER = catalogue.STABLEANIMATOR_FOLDER
INSIGHTFACE_FOLDER = catalogue.INSIGHTFACE_FOLDER
WEIGHT_EXTENSIONS = set(catalogue.WEIGHT_EXTENSIONS)
ONNX_EXTENSIONS = set(catalogue.ONNX_EXTENSIONS)


# ---------------------------------------------------------------- model folders

def models_dir() -> Path:
    return HOST.models_dir()


def register_model_folders() -> None:
    """Add ``models/stableanimator`` and ``models/insightface`` to ComfyUI's model folders."""
    HOST.register_model_folders((STABLEANIMATOR_FOLDER, INSIGHTFACE_FOLDER))


def folder_roots(folder: str) -> list[Path]:
    return HOST.folder_roots(folder)


def list_files(folder: str, extensions: set[str], contains: str = "") -> list[str]:
    """Relative paths (``/``-separated) of files under every root of ``folder``, sorted, for combo widgets."""
    out: set[str] = set()
    for root in folder_roots(folder):
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.suffix.lower() in extensions and path.is_file() and contains in path.name.lower():
                out.add(path.relative_to(root).as_posix())
    return sorted(out)


def with_default(found: list[str], default: str) -> list[str]:
    """Combo options that keep the official name selectable even before the download, so that choosing it
    ends in an error that says where to put the file (not in ComfyUI's bare "value not in list")."""
    return found if default in found else [default] + found


def file_choices(extensions: set[str], contains: str, default: str) -> list[str]:
    return with_default(list_files(STABLEANIMATOR_FOLDER, extensions, contains), default)


def list_svd_folders() -> list[str]:
    """SVD-xt diffusers folders (with ``vae/`` and ``image_encoder/``) under the stableanimator and diffusers roots."""
    from ..stableanimator_core.loading.layout import is_svd_folder

    found: set[str] = set()
    for folder in catalogue.SVD_PARENT_FOLDERS:
        for root in folder_roots(folder):
            if not root.is_dir():
                continue
            for cfg in list(root.glob("vae/config.json")) + list(root.glob("*/vae/config.json")) \
                    + list(root.glob("*/*/vae/config.json")):
                candidate = cfg.parent.parent
                if is_svd_folder(candidate):
                    found.add(f"{folder}/{candidate.relative_to(root).as_posix()}".rstrip("/."))
    return sorted(found)


def resolve_file(folder: str, name: str, what: str) -> Path:
    """Full path of a file chosen in a combo, confined to the folder's roots; the error names the file, the
    folders searched and the source."""
    from ..stableanimator_core.errors import CheckpointError
    from ..stableanimator_core.loading.layout import download_command
    from ..stableanimator_core.loading.model_folders import find_in_folders

    roots = folder_roots(folder)
    found = find_in_folders(roots, name)
    if found is not None:
        return found
    raise CheckpointError(
        f"{what} file '{name}' not found in {', '.join(str(r) for r in roots)}. Download the StableAnimator weights "
        f"({catalogue.STABLEANIMATOR_SOURCE}) into {models_dir() / STABLEANIMATOR_FOLDER} "
        f"or run `{download_command(models_dir())}`."
    )


def files_fingerprint(folder: str, names: Iterable[str]) -> str:
    """Changes when a chosen file is replaced, appears or disappears, so ComfyUI re-runs a loader (IS_CHANGED).
    A name outside the folder's roots is never probed (the loader then refuses it)."""
    from ..stableanimator_core.loading.model_folders import confined_path

    parts = []
    for name in names:
        paths = [p for p in (confined_path(root, name) for root in folder_roots(folder)) if p is not None]
        if not paths:
            parts.append(f"{name}:outside")
            continue
        found = next((p for p in paths if p.exists()), None)
        parts.append(f"{name}:{_tree_stamp(found)}" if found is not None else f"{name}:missing")
    return "|".join(parts)


def _tree_stamp(path: Path) -> str:
    """mtime and size of a file, or of every file under a folder (rewriting a weight file in place inside
    ``vae/`` changes neither the folder's mtime nor its size)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamps = []
    for f in files:
        st = f.stat()
        stamps.append(f"{f.relative_to(path).as_posix() if path.is_dir() else ''}@{st.st_mtime_ns}:{st.st_size}")
    return ",".join(stamps)


SVD_PARENT_FOLDERS = catalogue.SVD_PARENT_FOLDERS


def svd_fingerprint(name: str) -> str:
    """Changes when any file of the chosen SVD folder's ``vae/`` or ``image_encoder/`` changes."""
    folder, _, rel = name.replace("\\", "/").partition("/")
    if folder not in SVD_PARENT_FOLDERS:
        return f"{name}:outside"
    return files_fingerprint(folder, [f"{rel}/{sub}" if rel else sub for sub in ("vae", "image_encoder")])


def resolve_svd_folder(name: str) -> Path:
    from ..stableanimator_core.errors import CheckpointError
    from ..stableanimator_core.loading.model_folders import find_in_folders, outside_message

    folder, _, rel = name.replace("\\", "/").partition("/")
    if folder not in SVD_PARENT_FOLDERS:
        raise CheckpointError(outside_message([r for f in SVD_PARENT_FOLDERS for r in folder_roots(f)], name))
    found = find_in_folders(folder_roots(folder), rel, lambda p: (p / "vae").is_dir())
    if found is not None:
        return found
    raise CheckpointError(
        f"SVD folder '{name}' not found (looked under {', '.join(str(r) for r in folder_roots(folder))}). "
        f"It is the diffusers stable-video-diffusion-img2vid-xt folder (SVD/ in the StableAnimator download)."
    )


def insightface_root() -> Path:
    """The folder that holds ``models/antelopev2`` (shared with InstantID / IPAdapter FaceID)."""
    for root in folder_roots(INSIGHTFACE_FOLDER):
        if (root / "models").is_dir():
            return root
    return folder_roots(INSIGHTFACE_FOLDER)[0]


def temp_directory() -> Path:
    return HOST.temp_directory()


def input_directory() -> Path:
    return HOST.input_directory()


# ---------------------------------------------------------------- devices and memory

def torch_device() -> torch.device:
    return HOST.torch_device()


def offload_device() -> torch.device:
    return HOST.offload_device()


class ModuleGroup(torch.nn.Module):
    """Modules loaded and evicted together. A plain container, because ComfyUI's ModelPatcher sets
    ``.device`` on what it wraps, which diffusers/transformers models do not allow."""

    def __init__(self, **modules: torch.nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class ManagedModels:
    """A group of modules that ComfyUI's memory manager can load to the GPU and evict like its own models."""

    def __init__(self, group: ModuleGroup, load_device: torch.device, offload: torch.device):
        self.group = group
        self.load_device = load_device
        self.offload = offload
        self.patcher: Optional[Any] = HOST.model_patcher(group, load_device, offload)  # None outside ComfyUI

    def load(self, memory_required: int = 0) -> None:
        """Bring the group to the compute device (ComfyUI frees other models as needed)."""
        HOST.load(self.patcher, self.group, self.load_device, memory_required)

    def release(self) -> None:
        """Move the group back to the offload device and drop it from ComfyUI's loaded list."""
        HOST.unload(self.patcher)
        self.group.to(self.offload)
        soft_empty_cache()


def load_core_model(patcher: Any) -> None:
    """Have ComfyUI's memory manager load one of its own models (a core CLIP vision's patcher)."""
    HOST.load(patcher, None, torch_device(), 0)


def soft_empty_cache() -> None:
    HOST.soft_empty_cache()


def free_memory_bytes(device: torch.device) -> int:
    """Free memory as ComfyUI's memory manager counts it; outside ComfyUI the core's own estimate."""
    return HOST.free_memory_bytes(device)


# ---------------------------------------------------------------- interrupt and progress

def request_interrupt() -> None:
    """ComfyUI's Cancel button; outside ComfyUI its equivalent for tests and scripts."""
    HOST.request_interrupt()


def check_interrupt() -> None:
    """Raises when the user cancelled (ComfyUI's interrupt exception, or :class:`Interrupted`)."""
    HOST.check_interrupt()


class Progress:
    """ComfyUI's progress bar (with optional JPEG previews); a no-op outside ComfyUI."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self.bar = HOST.progress_bar(self.total)
        self.value = 0

    def update(self, value: int, preview=None) -> None:
        self.value = value
        if self.bar is not None:
            self.bar.update_absolute(value, self.total, ("JPEG", preview, 512) if preview is not None else None)


def oom_types() -> tuple[type[BaseException], ...]:
    return HOST.oom_types()
