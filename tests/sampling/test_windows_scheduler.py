"""Frame windows and the Euler/Karras schedule against the official values."""

from __future__ import annotations

import json

import pytest
import torch

from stableanimator_core.sampling.scheduler import karras_schedule
from stableanimator_core.sampling.windows import effective_tile_size, window_indices, window_weights


def test_official_window_examples():
    assert window_indices(16, 16, 4) == [list(range(16))]
    assert window_indices(40, 16, 4) == [[0, *range(1, 16)], [0, *range(13, 28)], [0, *range(25, 40)]]
    assert window_indices(9, 4, 2) == [[0, 1, 2, 3], [0, 3, 4, 5], [0, 5, 6, 7], [0, 6, 7, 8]]


def test_windows_cover_every_frame_once_per_window():
    for frames in range(1, 30):
        for tile in range(1, min(frames, 8) + 1):
            if frames > 1 and tile < 2:
                continue
            for overlap in range(0 if frames <= tile else 1, tile):
                wins = window_indices(frames, tile, overlap)
                assert {f for w in wins for f in w} == set(range(frames))
                assert all(len(w) == tile and len(set(w)) == tile and w[0] == 0 for w in wins)


def test_fewer_frames_than_window_uses_one_window():
    assert effective_tile_size(5, 16) == 5
    assert window_indices(5, effective_tile_size(5, 16), 4) == [[0, 1, 2, 3, 4]]
    assert window_indices(1, 1, 0) == [[0]]


def test_bad_window_settings_are_explained():
    with pytest.raises(ValueError, match="tile_overlap must be in 0..3"):
        window_indices(9, 4, 4)
    with pytest.raises(ValueError, match="tile_overlap must be at least 1"):
        window_indices(9, 4, 0)  # official: frames 4 and 8 would get no prediction (NaN)
    assert window_indices(4, 4, 0) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="at least one frame"):
        effective_tile_size(0, 16)


def test_triangular_weights():
    w = window_weights(16)
    assert torch.allclose(w, torch.tensor([1, 3, 5, 7, 9, 11, 13, 15, 15, 13, 11, 9, 7, 5, 3, 1]) / 16)
    assert torch.equal(window_weights(4), torch.tensor([0.25, 0.75, 0.75, 0.25]))


def test_25_step_sigmas_match_the_official_schedule():
    s = karras_schedule(25)
    expected = [700, 545.73, 421.57, 322.45, 244.02, 182.55, 134.85, 98.27, 70.54, 49.81, 34.54, 23.47, 15.59,
                10.10, 6.354, 3.870, 2.269, 1.273, 0.678, 0.339, 0.157, 0.066, 0.0248, 0.0079, 0.002, 0]
    assert s.sigmas.shape == (26,) and s.sigmas.dtype == torch.float32
    for ours, theirs in zip(s.sigmas.tolist(), expected):
        assert ours == pytest.approx(theirs, rel=1e-2, abs=1e-4)
    assert s.timesteps[0].item() == pytest.approx(1.6378, abs=1e-4)
    assert s.timesteps[-1].item() == pytest.approx(-1.5537, abs=1e-4)
    assert s.init_noise_sigma.item() == pytest.approx(700.0007, abs=1e-4)


def test_3_step_schedule_is_bit_identical_to_fixture(parity):
    meta = json.loads((parity / "A_basic_tiled" / "meta.json").read_text())
    cfg = json.loads((parity / "weights" / "configs.json").read_text())["scheduler"]
    s = karras_schedule(3, cfg)
    assert s.sigmas.tolist() == torch.tensor(meta["sigmas"], dtype=torch.float32).tolist()
    assert s.timesteps.tolist() == torch.tensor(meta["timesteps"], dtype=torch.float32).tolist()
