"""Node-test fixtures: the tiny models loaded through the loader node, and conditioning built through the nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _image(h=96, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, h, w, 3), generator=g)


def _poses(frames=5, h=96, w=80):
    return torch.stack([_image(h, w, seed=10 + i)[0] for i in range(frames)])


def _loaded(nodes):
    loader = nodes["StableAnimatorModelLoader"]
    req = loader.INPUT_TYPES()["required"]
    args = {k: v[0][0] if isinstance(v[0], list) else None for k, v in req.items()}
    args["precision"] = "fp32"
    return loader().load(**args)[0]


def _conditioning(nodes, payloads, model, frames=5, width=64, height=128, **controls):
    ref = _image(120, 90, seed=3)
    clip = nodes["StableAnimatorCLIPEncode"]().encode(model, ref)[0]
    face = payloads.FaceIdentity(embedding=np.linspace(-1, 1, 512).astype(np.float32), box=(20, 60, 20, 60),
                                image_hw=(120, 90))
    return nodes["StableAnimatorConditioning"]().condition(model, ref, clip, face, _poses(frames), width, height, 7,
                                                            127, 0.02, 23123134, **controls)


@pytest.fixture
def load_model(nodes):
    """Calls the loader node with its default (official) files, in fp32."""
    return lambda: _loaded(nodes)


@pytest.fixture
def condition(nodes, payloads):
    """``condition(model, frames=5, width=64, height=128, **optional_inputs)``: (conditioning, latent) from the
    CLIP/Conditioning nodes."""
    return lambda model, **kw: _conditioning(nodes, payloads, model, **kw)
