"""Loading the released checkpoints (and the same state dicts as safetensors) safely and strictly.

* ``.pth`` / ``.pt`` / ``.bin`` load with ``torch.load(weights_only=True)``: a pickle that carries code is
  refused, never executed; ``.safetensors`` load with safetensors.
* Every model is built from its configuration on the ``meta`` device and filled with ``assign=True`` and
  ``strict=True``: no silent partial loads, no double allocation of a 1.5 B-parameter UNet.
* Every failure names the file, the folder searched and where to get the file.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..errors import CheckpointError

log = logging.getLogger(__name__)

HF_REPO = "https://huggingface.co/FrancisRing/StableAnimator"
SVD_REPO = "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt"
WHERE_TO_GET = {
    "unet": f"{HF_REPO} (Animation/unet.pth)",
    "pose_net": f"{HF_REPO} (Animation/pose_net.pth)",
    "face_encoder": f"{HF_REPO} (Animation/face_encoder.pth)",
    "face_embedder": f"{HF_REPO} (Animation/glintr100_torch.pth)",
    "svd": f"{HF_REPO} (SVD/) or {SVD_REPO}",
}
# Buffers some exporters add that the models here do not have (they carry no learned value).
_BENIGN_EXTRA_KEYS = ("vision_model.embeddings.position_ids",)


def _hint(kind: str) -> str:
    where = WHERE_TO_GET.get(kind)
    if not where:
        return ""
    from .layout import download_command

    return f" Get it from {where}; `{download_command()}` fetches all weights."


def load_state_dict(path: str | os.PathLike, kind: str = "") -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a weights-only ``.pth``; errors say what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path.name} (looked in {path.parent}).{_hint(kind)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=_can_mmap(path))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Refused to load {path.name} (in {path.parent}): the file is a pickle that contains code or objects "
            f"other than tensors, so it was not executed. Use the released file or a .safetensors copy. ({exc})"
        ) from exc
    except Exception as exc:  # truncated zip, bad header, not a checkpoint at all
        raise CheckpointError(
            f"Could not read {path.name} (in {path.parent}): the file is damaged or not a checkpoint "
            f"(size {path.stat().st_size} bytes). Download it again.{_hint(kind)} ({type(exc).__name__}: {exc})"
        ) from exc
    sd = _unwrap(sd)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path.name} (in {path.parent}) does not hold a state dict of tensors.{_hint(kind)}")
    return sd


def _can_mmap(path: Path) -> bool:
    # mmap needs the zip-based format (torch >= 1.6 saves); the legacy format raises, so probe the magic bytes
    with open(path, "rb") as f:
        return f.read(2) == b"PK"


def _unwrap(sd: Any) -> Any:
    """Accept ``{"state_dict": ...}`` / ``{"module": ...}`` wrappers and a ``module.`` prefix from DDP saves."""
    if isinstance(sd, dict):
        for key in ("state_dict", "module", "model"):
            if key in sd and isinstance(sd[key], dict) and len(sd) == 1:
                sd = sd[key]
        if sd and all(k.startswith("module.") for k in sd):
            sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, kind: str = "") -> torch.nn.Module:
    """Strictly load ``state_dict`` into ``model`` (which may live on ``meta``); explain mismatches."""
    state_dict = {k: v for k, v in state_dict.items() if k not in _BENIGN_EXTRA_KEYS}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
                   for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    wrong_kind = [f"{k} ({state_dict[k].dtype}, model {expected[k].dtype})" for k in expected
                  if k in state_dict and state_dict[k].is_floating_point() != expected[k].is_floating_point()]
    if wrong_kind and not (missing or unexpected or wrong_shape):
        raise CheckpointError(
            f"{source} holds {len(wrong_kind)} tensors of the wrong kind (e.g. {', '.join(wrong_kind[:3])}): integer "
            f"values where the {type(model).__name__} has float weights or the reverse. The file was converted "
            f"wrongly or is not a StableAnimator checkpoint; use the released file.{_hint(kind)}"
        )
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} keys with other shapes (e.g. {'; '.join(wrong_shape[:3])})")
        raise CheckpointError(
            f"{source} does not match the {type(model).__name__} architecture: {'; '.join(parts)}. "
            f"Is it the right file for this slot, from the same release?{_hint(kind)}"
        )
    meta = any(p.is_meta for p in model.parameters())
    # cast to the model's declared dtypes so a fp16 file fills a fp32 model (and vice versa) correctly
    cast = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(cast, strict=True, assign=meta)
    return model


def build_on_meta(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.device("meta"):
        return factory()


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Config file not found: {path.name} (looked in {path.parent}).{_hint('svd')}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}). Download it again.") from exc


def find_weights_file(folder: str | os.PathLike, stems: Iterable[str], kind: str) -> Path:
    """The first existing ``<stem><ext>`` in ``folder`` (diffusers/transformers naming, fp16 variants last)."""
    folder = Path(folder)
    tried = []
    for stem in stems:
        for ext in (".safetensors", ".bin", ".pth"):
            p = folder / f"{stem}{ext}"
            tried.append(p.name)
            if p.is_file():
                return p
    raise CheckpointError(
        f"No weights found in {folder} (looked for {', '.join(tried)}).{_hint(kind)}"
    )
