"""HJBSettings: official defaults, refined-step range, learning-rate schedule, validation."""

import dataclasses
import json

import pytest
import torch

from stableanimator_core.errors import InputError
from stableanimator_core.hjb import HJBSettings


def test_defaults_are_the_official_ones():
    s = HJBSettings()
    assert (s.num_iterations, s.start_step, s.end_step, s.eta, s.mode, s.decode_chunk_size) == (
        3, 0, 20, 0.1, "faithful", 4)
    # 25 steps: 0..20 refined (21 of 25), lr 0.1, 0.096, ..., 0.02
    refined = [i for i in range(25) if s.is_refined(i)]
    assert refined == list(range(21))
    assert s.learning_rate(0, 25) == 0.1
    assert s.learning_rate(1, 25) == pytest.approx(0.096, abs=1e-15)
    assert s.learning_rate(20, 25) == pytest.approx(0.02, abs=1e-15)


def test_learning_rates_equal_the_fixture_bit_for_bit(parity):
    meta = json.loads((parity / "B_hjb_op_faithful" / "meta.json").read_text())
    s = HJBSettings(num_iterations=2, start_step=0, end_step=1)
    assert [s.learning_rate(i, meta["steps"]) for i in meta["refined_steps"]] == meta["learning_rates"]
    assert [i for i in range(meta["steps"]) if s.is_refined(i)] == meta["refined_steps"]


def test_frozen_and_dtype_names():
    s = HJBSettings(mode="fast", fast_dtype="fp16", fast_margin=3)
    assert s.fast_dtype is torch.float16 and s.fast_margin == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.eta = 0.2  # frozen


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "turbo"}, "mode"),
    ({"num_iterations": 0}, "iterations"),
    ({"start_step": -1}, "start step"),
    ({"start_step": 5, "end_step": 4}, "end step"),
    ({"eta": 0.0}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"decode_chunk_size": 0}, "chunk"),
    ({"fast_dtype": "int8"}, "dtype"),
    ({"fast_dtype": torch.float64}, "fast dtype"),
    ({"fast_margin": -1}, "margin"),
])
def test_invalid_settings_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        HJBSettings(**kwargs)


def test_learning_rate_rejects_bad_steps():
    s = HJBSettings()
    with pytest.raises(InputError):
        s.learning_rate(25, 25)
    with pytest.raises(InputError):
        s.learning_rate(0, 0)
