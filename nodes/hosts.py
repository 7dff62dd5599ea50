"""The two implementations of the pack's view of its host, chosen once at import: :class:`ComfyUIHost` (ComfyUI's
``folder_paths``, ``comfy.model_management`` memory manager and interrupt, ``ModelPatcher``, ``ProgressBar``) and
:class:`StandaloneHost` (CI, scripts: a models folder from ``STABLEANIMATOR_MODELS_DIR`` or ``./models``, the
default torch device, ``.to()`` moves, no progress bar, an interrupt flag). Nodes reach them through
:mod:`.comfy_bridge`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

import torch

log = logging.getLogger("StableAnimator")

try:  # ComfyUI present
    import folder_paths  # type: ignore
    import comfy.model_management as _mm  # type: ignore
    import comfy.model_patcher as _patcher  # type: ignore
    import comfy.utils as _utils  # type: ignore

    IN_COMFYUI = True
except ImportError:  # standalone
    folder_paths = _mm = _patcher = _utils = None
    IN_COMFYUI = False

class Interrupted(Exception):
    """Raised outside ComfyUI when :func:`request_interrupt` was called."""


class ComfyUIHost:
    """ComfyUI's folders, memory manager, interrupt and progress bar."""

    def models_dir(self) -> Path:
        return Path(folder_paths.models_dir)

    def register_model_folders(self, names: Iterable[str]) -> None:
        # add_model_folder_path appends: paths users configured in extra_model_paths.yaml are kept
        for name in names:
            folder_paths.add_model_folder_path(name, str(self.models_dir() / name))

    def folder_roots(self, folder: str) -> list[Path]:
        try:
            return [Path(p) for p in folder_paths.get_folder_paths(folder)]
        except KeyError:
            return [self.models_dir() / folder]

    def temp_directory(self) -> Path:
        return Path(folder_paths.get_temp_directory())

    def input_directory(self) -> Path:
        return Path(folder_paths.get_input_directory())

    def torch_device(self) -> torch.device:
        return _mm.get_torch_device()

    def offload_device(self) -> torch.device:
        return _mm.unet_offload_device()

    def model_patcher(self, group: torch.nn.Module, load_device: torch.device, offload: torch.device) -> Any:
        return _patcher.ModelPatcher(group, load_device=load_device, offload_device=offload)

    def load(self, patcher: Any, group: torch.nn.Module, load_device: torch.device, memory_required: int) -> None:
        _mm.load_models_gpu([patcher], memory_required=memory_required, force_full_load=True)

    def unload(self, patcher: Any) -> None:
        for loaded in list(_mm.current_loaded_models):
            if loaded.model is patcher:
                loaded.model_unload()
                _mm.current_loaded_models.remove(loaded)
                break

    def soft_empty_cache(self) -> None:
        _mm.soft_empty_cache()

    def free_memory_bytes(self, device: torch.device) -> int:
        return int(_mm.get_free_memory(device))

    def request_interrupt(self) -> None:
        _mm.interrupt_current_processing(True)

    def check_interrupt(self) -> None:
        _mm.throw_exception_if_processing_interrupted()

    def progress_bar(self, total: int) -> Any:
        return _utils.ProgressBar(total)

    def oom_types(self) -> tuple[type[BaseException], ...]:
        extra = (_mm.OOM_EXCEPTION,) if hasattr(_mm, "OOM_EXCEPTION") else ()
        return (torch.cuda.OutOfMemoryError, *extra)


class StandaloneHost:
    """Plain behaviour outside ComfyUI (tests, scripts)."""

    def __init__(self) -> None:
        self._interrupt = threading.Event()

    def models_dir(self) -> Path:
        return Path(os.environ.get("STABLEANIMATOR_MODELS_DIR", "models")).resolve()

    def register_model_folders(self, names: Iterable[str]) -> None:
        pass  # the folders are found under models_dir()

    def folder_roots(self, folder: str) -> list[Path]:
        return [self.models_dir() / folder]

    def temp_directory(self) -> Path:
        return Path(tempfile.gettempdir()) / "stableanimator"

    def input_directory(self) -> Path:
        return Path("input").resolve()

    def torch_device(self) -> torch.device:
        from ..stableanimator_core.devices import default_device

        return default_device()

    def offload_device(self) -> torch.device:
        return torch.device("cpu")

    def model_patcher(self, group: torch.nn.Module, load_device: torch.device, offload: torch.device) -> Any:
        return None

    def load(self, patcher: Any, group: torch.nn.Module, load_device: torch.device, memory_required: int) -> None:
        group.to(load_device)

    def unload(self, patcher: Any) -> None:
        pass  # release() moves the group to the offload device

    def soft_empty_cache(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def free_memory_bytes(self, device: torch.device) -> int:
        from ..stableanimator_core.models.acceleration import free_memory_bytes as core_free_memory_bytes

        return core_free_memory_bytes(device)

    def request_interrupt(self) -> None:
        self._interrupt.set()

    def check_interrupt(self) -> None:
        if self._interrupt.is_set():
            self._interrupt.clear()
            raise Interrupted("interrupted")

    def progress_bar(self, total: int) -> Any:
        return None

    def oom_types(self) -> tuple[type[BaseException], ...]:
        return (torch.cuda.OutOfMemoryError,)


HOST: ComfyUIHost | StandaloneHost = ComfyUIHost() if IN_COMFYUI else StandaloneHost()
