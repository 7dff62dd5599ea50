"""The nodes on the one settings model: non-finite settings refused (issue 12, item 1), defaults from it."""

from __future__ import annotations

import math

import pytest
import torch

from stableanimator_core.settings import CONDITIONING, OFFICIAL_SEED, SAMPLER


def test_nodes_refuse_non_finite_settings(pack, nodes, payloads, load_model, condition):
    InputError = pack.stableanimator_core.errors.InputError  # the pack's class, as ComfyUI imports it
    model = load_model()
    cond, latent = condition(model, frames=2)
    with pytest.raises(InputError, match="guidance must be a finite number"):
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 1, math.nan, 16, 4)
    with pytest.raises(InputError, match="guidance_start must be a finite number"):
        nodes["StableAnimatorSampler"]().sample(model, cond, latent, 1, 1, 3.0, 16, 4, guidance_start=math.nan)
    ref = torch.rand((1, 96, 80, 3), generator=torch.Generator().manual_seed(0))
    clip = nodes["StableAnimatorCLIPEncode"]().encode(model, ref)[0]
    face = payloads.FaceIdentity(embedding=None, box=None, image_hw=(96, 80))
    with pytest.raises(InputError, match="noise_aug_strength"):
        nodes["StableAnimatorConditioning"]().condition(model, ref, clip, face, ref.repeat(2, 1, 1, 1), 64, 128, 7, 127,
                                                        math.nan, 1)


def test_node_widget_defaults_are_the_settings_defaults(nodes):
    sampler = nodes["StableAnimatorSampler"].INPUT_TYPES()["required"]
    assert sampler["seed"][1]["default"] == SAMPLER.seed and sampler["steps"][1]["default"] == SAMPLER.steps
    assert sampler["guidance"][1]["default"] == SAMPLER.max_guidance
    cond = nodes["StableAnimatorConditioning"].INPUT_TYPES()["required"]
    assert cond["noise_seed"][1]["default"] == OFFICIAL_SEED
    assert cond["noise_aug_strength"][1]["default"] == CONDITIONING.noise_aug_strength
    hjb = nodes["StableAnimatorHJBSettings"].INPUT_TYPES()["required"]
    assert hjb["mode"][1]["default"] == "memory_bounded"  # as the CLI's --hjb-mode
