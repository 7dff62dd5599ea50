"""Loading insightface's antelopev2 pack (SCRFD-10G detector + glintr100 ArcFace) from the shared folder.

ComfyUI users already keep it for InstantID / PuLID / IPAdapter as ``models/insightface/models/antelopev2/``;
insightface resolves ``FaceAnalysis(name='antelopev2', root=R)`` to ``R/models/antelopev2``, so ``R`` is the
folder that *contains* ``models``. The pack's zip extracts into ``antelopev2/antelopev2`` (StableAnimator
issue #20, InstantID #11): that layout is accepted too, with a hint to move the files up one level.
Nothing is ever downloaded: a missing pack is a CheckpointError saying where to get it.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from typing import Any, Optional

import numpy as np

from ..errors import CheckpointError, DependencyError
from ..loading.catalogue import ANTELOPEV2_REQUIRED, model_source
from ..loading.onnx_backend import provider_names, register_session_holder, resolve_providers

log = logging.getLogger(__name__)

PACK = "antelopev2"
REQUIRED_FILES = ANTELOPEV2_REQUIRED
DEFAULT_DET_SIZE = 640

_lock = threading.Lock()
_cache: dict[tuple, "AntelopeV2"] = {}


def _release_cached() -> int:
    with _lock:
        count = len(_cache)
        _cache.clear()
    return count


register_session_holder(_release_cached)


def require_insightface():
    """The insightface package, or a DependencyError with the install command."""
    try:
        import insightface
        from insightface.app import FaceAnalysis  # noqa: F401  (fails on broken installs)
    except ImportError as exc:
        raise DependencyError(
            f"insightface is not installed ({exc}). Install it without its dependency list, which would replace "
            "onnxruntime-gpu by the CPU build: `pip install --no-deps insightface` (its other needs: onnx, scipy, "
            "scikit-image, tqdm, requests, opencv)."
        ) from exc
    return insightface


def find_pack(insightface_root: str) -> tuple[str, bool]:
    """The folder holding the antelopev2 .onnx files and whether it is the standard ``<root>/models/antelopev2``.

    Also accepted: the nested zip layout, and ``insightface_root`` pointing at the pack folder itself.
    """
    root = os.path.abspath(os.path.expanduser(insightface_root))
    standard = os.path.join(root, "models", PACK)
    candidates = [standard, os.path.join(standard, PACK), os.path.join(root, PACK), root]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f)) for f in REQUIRED_FILES):
            return folder, folder == standard
    present = [f for f in REQUIRED_FILES if os.path.isfile(os.path.join(standard, f))]
    missing = [f for f in REQUIRED_FILES if f not in present]
    raise CheckpointError(
        f"insightface antelopev2 model(s) {', '.join(missing)} not found in {standard} (also looked in "
        f"{candidates[1]} and {root}). Download {model_source(REQUIRED_FILES[0])}."
    )


class AntelopeV2:
    """An insightface ``FaceAnalysis`` with the antelopev2 detector and recogniser on an explicit provider.

    ``faces(image_bgr, det_size)`` returns insightface ``Face`` objects (``bbox``, ``kps``, ``det_score``,
    ``embedding``). Images must be BGR, the channel order insightface and StableAnimator's training use.
    """

    def __init__(self, insightface_root: str, provider: str = "auto") -> None:
        require_insightface()
        from insightface.app import FaceAnalysis

        folder, standard = find_pack(insightface_root)
        if not standard:
            log.warning("antelopev2 found in %s; insightface expects the .onnx files directly in "
                        "<insightface>/models/antelopev2/ (move them there to share them with other nodes)", folder)
        self.folder = folder
        self.providers = resolve_providers(provider)
        self.ctx_id = 0 if "CUDAExecutionProvider" in provider_names(self.providers) else -1
        try:
            if standard:
                root = os.path.dirname(os.path.dirname(folder))
                self.app = FaceAnalysis(name=PACK, root=root, providers=self.providers,
                                        allowed_modules=["detection", "recognition"])
            else:
                # an absolute name is used as the folder itself by insightface 0.7 (path join) and 2.x (is_dir)
                self.app = FaceAnalysis(name=folder, root=folder, providers=self.providers,
                                        allowed_modules=["detection", "recognition"])
        except Exception as exc:  # onnxruntime's load errors derive from Exception only
            raise CheckpointError(
                f"insightface could not load the antelopev2 models in {folder} ({type(exc).__name__}: {exc}). The "
                f"files may be truncated; download them again from {model_source(REQUIRED_FILES[0])}."
            ) from exc
        if "recognition" not in self.app.models:
            raise CheckpointError(f"{folder} has no face-recognition model insightface can use (glintr100.onnx)")
        self._det_size: Optional[int] = None
        self.set_det_size(DEFAULT_DET_SIZE)

    def set_det_size(self, size: int) -> None:
        if size != self._det_size:
            self.app.prepare(ctx_id=self.ctx_id, det_thresh=0.5, det_size=(int(size), int(size)))
            self._det_size = int(size)

    def faces(self, image_bgr: np.ndarray, det_size: int = DEFAULT_DET_SIZE) -> list[Any]:
        self.set_det_size(det_size)
        # insightface's ArcFace alignment calls scikit-image's SimilarityTransform.estimate, which scikit-image
        # >= 0.26 deprecates with a FutureWarning on every face: nothing a user can act on, so it is not shown.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(insightface|skimage)(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*estimate.*")
            return list(self.app.get(image_bgr))

    def embed_aligned(self, face_crop: np.ndarray) -> np.ndarray:
        """Raw glintr100 embedding (512,) of an already aligned face crop (any square size: insightface resizes it
        to 112 px), as the official fallback's ``handler_ante.get_feat(aligned_face)``."""
        return np.asarray(self.app.models["recognition"].get_feat(face_crop), dtype=np.float32).reshape(-1)


def load_antelopev2(insightface_root: str, provider: str = "auto") -> AntelopeV2:
    """A cached ``AntelopeV2`` per (pack folder, provider)."""
    folder, _ = find_pack(insightface_root)
    key = (os.path.realpath(folder), repr(resolve_providers(provider)))
    with _lock:
        if key not in _cache:
            _cache[key] = AntelopeV2(insightface_root, provider)
        return _cache[key]
