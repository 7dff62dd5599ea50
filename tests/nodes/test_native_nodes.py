"""The core-sampler nodes outside ComfyUI: the official-noise batch index, and a clear refusal without ComfyUI.

Inside ComfyUI they are covered by tests/e2e/test_e2e_ksampler.py.
"""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.pipeline.animate import latent_noise


@pytest.mark.parametrize("width,height,frames,tile", [(64, 128, 16, 8), (512, 512, 20, 16), (64, 64, 3, 16)])
def test_batch_index_replays_the_official_initial_noise(pack, width, height, frames, tile):
    """ComfyUI draws one [1, 4, h, w] noise per batch index from torch.manual_seed(seed), in index order; the
    official code draws the reference's [1, 3, H, W] noise, then one window [1, T, 4, h, w], from the same seed."""
    index = pack.nodes.native_nodes.official_batch_index(frames, tile)
    seed, h, w = 23123134, height // 8, width // 8
    gen = torch.Generator("cpu").manual_seed(seed)
    per_index = [torch.randn((1, 4, h, w), generator=gen) for _ in range(max(index) + 1)]
    replayed = torch.cat([per_index[i] for i in index])
    official = latent_noise(seed, width, height, frames, tile)[0]  # one window
    t = official.shape[0]
    assert torch.equal(replayed, official.repeat(frames // t + 1, 1, 1, 1)[:frames])


def test_core_sampler_nodes_say_they_need_comfyui(pack, nodes, load_model):
    with pytest.raises(pack.stableanimator_core.errors.InputError, match="needs ComfyUI"):
        nodes["StableAnimatorModelForKSampler"]().build(load_model())
