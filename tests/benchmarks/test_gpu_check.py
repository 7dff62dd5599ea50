"""The prepared GPU check in its CPU mode: every check's code runs and the report is written (tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_on_cpu(tmp_path, parity):
    env = dict(os.environ, STABLEANIMATOR_PARITY_DIR=str(parity), OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick",
                           "--out-dir", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check_cpu_quick.json").read_text())
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert set(status) >= {"parity_A_basic_tiled", "sdpa_fp16_scores", "unet_half_64x64x4", "unet_half_64x128x4",
                           "sync_per_step", "pipeline_vs_official", "hjb_modes", "unet_compile"}
    assert all(s in ("ok", "warn", "skipped") for s in status.values()), status
    assert status["parity_A_basic_tiled"] == "ok" and status["unet_half_64x128x4"] == "ok"
    half = next(c for c in report["checks"] if c["name"] == "unet_half_64x128x4")["data"]
    assert half["fp16"]["finite"] and 0 < half["fp16"]["rel_l2"] < half["bf16"]["rel_l2"]
    # one line per check on stdout, and the table beside the JSON
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == len(status)
    assert (tmp_path / "gpu_check_cpu_quick.txt").read_text().count("\n") == len(status) + 1
