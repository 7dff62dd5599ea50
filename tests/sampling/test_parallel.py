"""One video on several processes: the work split, and 2 gloo processes giving the single-process latents."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stableanimator_core.sampling.parallel import COND, UNCOND, WorkSplit

HERE = Path(__file__).resolve().parent


def test_windows_are_dealt_round_robin():
    assert WorkSplit(0, 2, "windows").units(3) == [(0, (UNCOND, COND)), (2, (UNCOND, COND))]
    assert WorkSplit(1, 2, "windows").units(3) == [(1, (UNCOND, COND))]
    assert WorkSplit(0, 2, "windows").describe(3) == "rank 0/2: windows 0, 2 (of 3)"


def test_cfg_split_gives_each_of_two_processes_one_half():
    assert WorkSplit(0, 2, "cfg").units(2) == [(0, (UNCOND,)), (1, (UNCOND,))]
    assert WorkSplit(1, 2, "cfg").describe(2) == "rank 1/2: conditional half of windows 0, 1 (of 2)"
    # three processes: halves dealt in order, so rank 0 holds both halves of window 1 (batched together)
    assert WorkSplit(0, 3, "cfg").units(2) == [(0, (UNCOND,)), (1, (COND,))]
    assert WorkSplit(2, 3, "cfg").units(3) == [(1, (UNCOND,)), (2, (COND,))]


@pytest.mark.parametrize("windows, world, splits_cfg", [(4, 2, False), (1, 2, True), (3, 2, True), (2, 4, True),
                                                        (6, 3, False), (1, 1, False)])
def test_auto_splits_cfg_only_where_it_shortens_the_longest_share(windows, world, splits_cfg):
    assert WorkSplit(0, world).splits_cfg(windows) is splits_cfg


def test_every_unit_is_computed_by_exactly_one_process():
    for world in (2, 3, 5):
        for mode in ("windows", "cfg", "auto"):
            seen = [(w, b) for r in range(world) for w, bs in WorkSplit(r, world, mode).units(4) for b in bs]
            assert sorted(seen) == [(w, b) for w in range(4) for b in (UNCOND, COND)]


def test_two_gloo_processes_give_the_single_process_latents(tiny_models, fixture_inputs, parity, tmp_path):
    """Tiled run (3 windows), split by windows, by CFG halves, and with HJB's chunks split (memory-bounded)."""
    spec = importlib.util.spec_from_file_location("distributed_sampling", HERE / "distributed_sampling.py")
    D = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(D)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", str(HERE / "distributed_sampling.py"), str(parity), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "rank 0/2: windows 0, 2 (of 3)" in log and "rank 1/2: windows 1 (of 3)" in log
    assert "rank 0/2: unconditional half of windows 0, 1, 2 (of 3)" in log
    assert "rank 1/2: conditional half of windows 0, 1, 2 (of 3)" in log

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes
    try:
        for case in D.CASES:
            single = D.run_case(tiny_models, fixture_inputs, case)
            split = torch.load(tmp_path / f"{case[0]}.pt")
            assert torch.isfinite(single).all()
            err = (split - single).abs().max().item()
            assert err <= 1e-6, f"{case[0]}: max-abs {err} (latents up to {single.abs().max().item():.3g})"
    finally:
        torch.set_num_threads(threads)
