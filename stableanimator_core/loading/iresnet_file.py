"""Loading arcface_torch IResNet checkpoints (``glintr100_torch.pth``) strictly into :class:`models.iresnet.IResNet`."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional

import torch

from ..errors import CheckpointError
from ..models.iresnet import IResNet
from .checkpoints import build_on_meta, load_into, load_state_dict


def infer_iresnet_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Block counts and embedding size read off an arcface_torch state dict's keys and shapes."""
    layers = []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for k in state_dict if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        if not indices:
            raise CheckpointError(f"this is not an IResNet face-recognition checkpoint: no 'layer{stage}.*' weights")
        layers.append(max(indices) + 1)
    if "fc.weight" not in state_dict:
        raise CheckpointError("this is not an IResNet face-recognition checkpoint: no 'fc.weight'")
    return {"layers": layers, "num_features": int(state_dict["fc.weight"].shape[0])}


def _freeze(model: IResNet) -> IResNet:
    # The face net only ever needs input gradients; frozen parameters keep backward from allocating ~0.26 GB
    # of weight gradients that the official code leaves requiring grad.
    model.eval()
    model.requires_grad_(False)
    return model


def load_iresnet(
    state_dict: Mapping[str, torch.Tensor], config: Optional[Mapping[str, Any]] = None, source: str = "face weights"
) -> IResNet:
    """An eval-mode, frozen IResNet with ``state_dict`` loaded strictly (config inferred from keys if None)."""
    cfg = dict(config) if config is not None else infer_iresnet_config(state_dict)
    model = build_on_meta(lambda: IResNet.from_config(cfg))
    load_into(model, dict(state_dict), source, "face_embedder")
    return _freeze(model)


def load_iresnet_file(path: str | os.PathLike, config: Optional[Mapping[str, Any]] = None) -> IResNet:
    """Load ``glintr100_torch.pth`` (or any arcface_torch IResNet file) strictly; frozen, eval mode, on CPU."""
    return load_iresnet(load_state_dict(path, "face_embedder"), config, os.path.basename(path))
