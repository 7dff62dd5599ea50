"""``torchrun --nproc-per-node 2 -m stableanimator_core animate ...`` (gloo on CPU): the log says how the windows
were split, only rank 0 writes, and the video is the single-process one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import torch

from stableanimator_core.cli import main

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "example_workflows" / "inputs"


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_two_processes_write_the_single_process_video(tiny_models_dir, tmp_path):
    args = ["animate", "--models", str(tiny_models_dir), "--reference", str(INPUTS / "stableanimator_reference.png"),
            "--driving", str(INPUTS / "stableanimator_driving.mp4"), "--width", "64", "--height", "64",
            "--steps", "2", "--max-frames", "5", "--tile-size", "3", "--tile-overlap", "1", "--precision", "fp32",
            "--hjb", "--hjb-mode", "memory_bounded", "--hjb-iterations", "1", "--hjb-end", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "stableanimator_core", *args, "--out", str(tmp_path / "split.mp4")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 5 frames, windows [0,1,2] [0,3,4]: one window each
    assert "rank 0/2: windows 0 (of 2)" in log and "rank 1/2: windows 1 (of 2)" in log, log[-4000:]
    assert log.count("wrote ") == 1  # only rank 0 decodes and writes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process
    try:
        assert main([*args, "--out", str(tmp_path / "single.mp4")]) == 0
    finally:
        torch.set_num_threads(threads)
    split, single = _frames(tmp_path / "split.mp4"), _frames(tmp_path / "single.mp4")
    assert split.shape == single.shape == (5, 64, 64, 3)
    assert single.std() > 1.0  # not a blank video
    assert np.array_equal(split, single)
