"""The one settings model: frozen, validated where made, every float finite and in range (issue 12, item 1),
and the CLI's and the nodes' defaults read from it."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from stableanimator_core.cli import build_parser, main
from stableanimator_core.errors import InputError
from stableanimator_core.sampling.controls import TermWindow
from stableanimator_core.settings import CONDITIONING, OFFICIAL_SEED, SAMPLER, ConditioningSettings, SamplerSettings

INPUTS = Path(__file__).resolve().parents[1] / "example_workflows" / "inputs"
NON_FINITE = [math.nan, math.inf, -math.inf]


def test_defaults_are_the_official_values_and_frozen():
    assert (SAMPLER.steps, SAMPLER.min_guidance, SAMPLER.max_guidance, SAMPLER.tile_size, SAMPLER.tile_overlap,
            SAMPLER.seed) == (25, 3.0, 3.0, 16, 4, 23123134) and OFFICIAL_SEED == 23123134
    assert (CONDITIONING.width, CONDITIONING.height, CONDITIONING.fps, CONDITIONING.motion_bucket_id,
            CONDITIONING.noise_aug_strength) == (512, 512, 7, 127.0, 0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLER.steps = 3


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("field", ["min_guidance", "max_guidance"])
def test_non_finite_guidance_is_refused(field, value):
    with pytest.raises(InputError, match="guidance must be a finite number"):
        SamplerSettings(**{field: value})


@pytest.mark.parametrize("value", NON_FINITE + [-0.1, 1.5])
def test_noise_aug_strength_must_be_finite_and_in_range(value):
    with pytest.raises(InputError, match="noise_aug_strength"):
        ConditioningSettings(noise_aug_strength=value)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be at least 1"), ({"steps": 2.5}, "steps must be a whole number"),
    ({"tile_size": 0}, "tile_size"), ({"tile_overlap": -1}, "tile_overlap"), ({"seed": -1}, "seed"),
    ({"min_guidance": 1.0}, "greater than 1.0"), ({"max_guidance": 1000.0}, "at most 100.0"),
])
def test_sampler_settings_ranges(kwargs, message):
    with pytest.raises(InputError, match=message):
        SamplerSettings(**kwargs)


@pytest.mark.parametrize("kwargs", [{"motion_bucket_id": math.nan}, {"fps": 0}, {"width": 32},
                                    {"identity": TermWindow(math.inf)}, {"pose": TermWindow(1.0, math.nan, 1.0)}])
def test_conditioning_settings_ranges(kwargs):
    with pytest.raises(InputError):
        ConditioningSettings(**kwargs)


def test_cli_defaults_are_the_settings_defaults():
    args = build_parser().parse_args(["animate", "--reference", "r.png", "--driving", "d.mp4", "--out", "o.mp4"])
    assert (args.steps, args.guidance, args.tile_size, args.tile_overlap, args.seed, args.width, args.height) == (
        SAMPLER.steps, SAMPLER.max_guidance, SAMPLER.tile_size, SAMPLER.tile_overlap, SAMPLER.seed,
        CONDITIONING.width, CONDITIONING.height)


@pytest.mark.parametrize("flag, value", [("--guidance", "nan"), ("--guidance", "inf"), ("--id-strength", "nan"),
                                         ("--fps", "nan")])
def test_cli_non_finite_setting_exits_non_zero_before_any_work(tiny_models_dir, tmp_path, capsys, monkeypatch,
                                                               flag, value):
    import stableanimator_core.loading.layout as layout

    def no_work(*args, **kwargs):
        raise AssertionError("the models were looked up: the setting was not checked up front")

    monkeypatch.setattr(layout.ModelLayout, "from_models_dir", no_work)
    out = tmp_path / "animation.mp4"
    code = main(["animate", "--models", str(tiny_models_dir), "--reference", str(INPUTS / "stableanimator_reference.png"),
                 "--driving", str(INPUTS / "stableanimator_driving.mp4"), "--out", str(out), flag, value])
    assert code == 2
    assert "finite" in capsys.readouterr().err
    assert not out.exists()
