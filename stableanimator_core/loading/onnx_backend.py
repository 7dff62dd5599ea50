"""onnxruntime for the preprocessing models: import check, explicit provider choice, cached sessions.

DWPose (YOLOX + RTMPose) and insightface all run through onnxruntime. Three things go wrong for users and
are handled here with a message that says what to do:

* onnxruntime missing, or half-uninstalled: ``onnxruntime`` and ``onnxruntime-gpu`` write the same package
  folder, and uninstalling one of the two leaves a module without ``__version__``;
* CUDA asked for but not offered (CPU build installed, or torch sees no GPU): one warning, then CPU;
* a model file missing, truncated, or a Git-LFS pointer instead of the weights.

Memory: onnxruntime's default arenas grow by doubling and never give memory back, outside the accounting of
ComfyUI's memory manager. CUDA sessions here grow their arena by what is requested (``kSameAsRequested``); CPU
sessions keep theirs (it is what keeps a long video's RAM flat); and :func:`release_sessions` drops every cached
session (also those of the holders that registered with :func:`register_session_holder`, e.g. insightface's), so a
GPU stage that needs the memory can free it (``nodes/gpu_session.py`` does when the free memory is short).
"""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType
from typing import Any, Callable, Optional, Sequence, Union

from ..errors import CheckpointError, DependencyError
from .catalogue import PROVIDER_CHOICES, model_source

log = logging.getLogger(__name__)

Provider = Union[str, tuple[str, dict]]
# the CUDA arena grows by what a run requests, not to the next power of two, so it stays near the models' need
CUDA_ARENA = {"arena_extend_strategy": "kSameAsRequested"}

_BUILDS = "NVIDIA GPU: `pip install onnxruntime-gpu`; CPU or Mac: `pip install onnxruntime`"
_INSTALL_HINT = f"Install one of the two builds into the Python that runs ComfyUI: {_BUILDS}."

_lock = threading.Lock()
_sessions: dict[tuple, Any] = {}
_holders: list[Callable[[], int]] = []  # other caches of sessions; each clears itself and says how many it held
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    # ComfyUI runs many nodes per prompt; one line per problem and process is enough
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def require_onnxruntime() -> ModuleType:
    """The onnxruntime module, or a DependencyError that says how to install or repair it."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(f"onnxruntime is not installed ({exc}). {_INSTALL_HINT}") from exc
    if not hasattr(ort, "__version__") or not hasattr(ort, "InferenceSession"):
        raise DependencyError(
            "onnxruntime is broken: the package folder exists but is empty or half-removed (this happens when "
            "onnxruntime and onnxruntime-gpu were both installed and one was uninstalled). Repair it with "
            f"`pip uninstall -y onnxruntime onnxruntime-gpu`, then install one build again: {_BUILDS}."
        )
    return ort


def _torch_cuda_device() -> Optional[int]:
    # torch decides which GPU ComfyUI uses (--cuda-device, CUDA_VISIBLE_DEVICES); follow it instead of assuming 0
    try:
        import torch
    except ImportError:
        return None
    try:
        return int(torch.cuda.current_device()) if torch.cuda.is_available() else None
    except Exception:  # a broken driver reports through exceptions; treat it as "no GPU"
        return None


def resolve_providers(provider: str = "auto", device_id: Optional[int] = None) -> list[Provider]:
    """The onnxruntime provider list for ``"auto" | "cuda" | "cpu"``.

    ``auto`` takes CUDA only when onnxruntime offers CUDAExecutionProvider *and* torch sees a GPU (an
    onnxruntime-gpu build on a machine without a usable GPU otherwise logs errors on every session).
    ``cuda`` when CUDA is not usable logs one warning and falls back to CPU. The CUDA device follows torch's
    current device unless ``device_id`` is given.
    """
    choice = (provider or "auto").strip().lower()
    if choice not in PROVIDER_CHOICES:
        raise ValueError(f"provider must be one of {PROVIDER_CHOICES}, got {provider!r}")
    if choice == "cpu":
        return ["CPUExecutionProvider"]
    ort = require_onnxruntime()
    offered = "CUDAExecutionProvider" in ort.get_available_providers()
    torch_device = _torch_cuda_device()
    if offered and torch_device is not None:
        device = torch_device if device_id is None else int(device_id)
        return [("CUDAExecutionProvider", {"device_id": device, **CUDA_ARENA}), "CPUExecutionProvider"]
    if choice == "cuda" or offered:
        why = (
            "this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)"
            if not offered
            else "torch sees no usable CUDA GPU"
        )
        _warn_once(f"nocuda:{why}", f"ONNX models will run on the CPU: {why}.")
    return ["CPUExecutionProvider"]


def provider_names(providers: Sequence[Provider]) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def _check_model_file(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path)) or "."
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise CheckpointError(
            f"model file '{name}' was not found in {folder}. Download it from {model_source(name)} and put it "
            "in that folder."
        )
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        raise CheckpointError(f"model file {path} is empty (an interrupted download?). Download it again from "
                              f"{model_source(name)}.")
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(
            f"model file {path} is a Git-LFS pointer, not the weights (the repository was cloned without git lfs). "
            f"Download the file itself from {model_source(name)}."
        )


def _unreadable(path: str, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"model file {path} could not be loaded by onnxruntime ({type(exc).__name__}: {exc}). The file is probably "
        f"truncated or not an ONNX model; download it again from {model_source(os.path.basename(path))}."
    )


def get_session(path: str, provider: str = "auto", device_id: Optional[int] = None):
    """A cached ``onnxruntime.InferenceSession`` for ``path`` on the chosen provider.

    Sessions are shared per (file, size, mtime, providers): loading yolox_l takes seconds and the nodes run
    once per prompt. A missing or unreadable file raises CheckpointError naming the file, the folder searched
    and where to download it.
    """
    ort = require_onnxruntime()
    _check_model_file(path)
    providers = resolve_providers(provider, device_id)
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, repr(providers))
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        options = ort.SessionOptions()
        options.log_severity_level = 3  # ORT prints provider fall-back noise at warning level; we report it ourselves
        # the CPU arena stays on: without it onnxruntime's per-run allocations grow the process (measured: +1.2 MB
        # RSS per DWPose frame, 4.5 GB over 1500 frames); with it RSS stays flat
        options.enable_cpu_mem_arena = True
        wanted = provider_names(providers)
        try:
            session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:
            if "CUDAExecutionProvider" not in wanted:
                raise _unreadable(path, exc) from exc
            # a CUDA set-up problem must not pass for a broken file: the CPU decides which it is
            try:
                session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
            except Exception:
                raise _unreadable(path, exc) from exc
            _warn_once("cuda-failed", f"onnxruntime could not open a CUDA session ({exc}); ONNX models run on the CPU.")
        else:
            _check_cuda_kept(session, wanted)
        _sessions[key] = session
        return session


def _check_cuda_kept(session, wanted: list[str]) -> None:
    # onnxruntime-gpu silently drops CUDA when the CUDA/cuDNN libraries do not match its build
    if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in session.get_providers():
        _warn_once(
            "cuda-dropped",
            "onnxruntime could not start CUDA (CUDA/cuDNN libraries missing or of another version than this "
            "onnxruntime-gpu build expects); ONNX models run on the CPU.",
        )


def clear_session_cache() -> None:
    """Forget cached sessions (frees their memory once no caller holds them)."""
    release_sessions()


def register_session_holder(clear: Callable[[], int]) -> None:
    """Another cache of onnxruntime sessions (``clear()`` empties it and returns how many entries it held), so
    :func:`release_sessions` frees those too."""
    if clear not in _holders:
        _holders.append(clear)


def release_sessions() -> int:
    """Drop every cached ONNX session (this module's and the registered holders'); returns how many were held.
    The next use loads its model again (seconds)."""
    with _lock:
        count = len(_sessions)
        _sessions.clear()
    for clear in _holders:
        count += clear()
    return count


def cached_session_count() -> int:
    return len(_sessions)
