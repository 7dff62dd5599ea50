"""``python -m stableanimator_core batch`` on a local Ray instance with 2 CPU workers and the tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

pytest.importorskip("ray", reason="Ray is the batch command's optional dependency (requirements-cluster.txt)")

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "example_workflows" / "inputs"
SMALL = {"width": 64, "height": 64, "max-frames": 3, "steps": 1, "tile-size": 3, "tile-overlap": 1,
         "precision": "fp32"}


def _batch(jobs: Path, out: Path, models: Path) -> tuple[int, str, dict]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stableanimator_core", "batch", str(jobs), "--out", str(out),
                           "--models", str(models), "--workers", "2", "--num-cpus", "2", "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr, json.loads((out / "summary.json").read_text())


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_four_jobs_one_broken_then_resume(tiny_models_dir, tmp_path):
    (tmp_path / "empty_models").mkdir()
    jobs = tmp_path / "jobs.jsonl"
    ref, drv = str(INPUTS / "stableanimator_reference.png"), str(INPUTS / "stableanimator_driving.mp4")
    lines = [{"reference": ref, "driving": drv, "out": "seed1.mp4", "seed": 1, **SMALL},
             {"reference": ref, "driving": drv, "out": "tall/seed2.mp4", "seed": 2, **SMALL, "height": 128},
             {"id": "broken", "reference": ref, "driving": drv, "out": "broken.mp4", "models": "empty_models", **SMALL},
             {"reference": ref, "driving": drv, "out": "seed3.mp4", "seed": 3, **SMALL, "max-frames": 2}]
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"

    code, log, summary = _batch(jobs, out, tiny_models_dir)
    assert code == 1, log  # a failed job makes the batch's exit status non-zero; the other jobs still ran
    assert (summary["jobs"], summary["done"], summary["skipped"], summary["failed"]) == (4, 3, 0, 1), log
    by_id = {r["job_id"]: r for r in summary["results"]}
    assert "CheckpointError" in by_id["broken"]["error"] and "weights are missing" in by_id["broken"]["error"]
    assert not (out / "broken.mp4").exists()
    expected_frames = {"seed1.mp4": 3, "tall/seed2.mp4": 3, "seed3.mp4": 2}
    for name, frames in expected_frames.items():
        record = by_id[name]
        assert record["status"] == "done" and record["frames"] == frames == _frames(out / name)
        assert record["time_s"] > 0 and record["timings"]["sampling"] > 0
        assert record["frames_with_face"] is not None
        if record["frames_with_face"]:
            assert -1.0 <= record["identity_score"] <= 1.0
    assert len(summary["workers"]) == 2
    assert len({r["worker"] for r in summary["results"]}) == 2  # the first two jobs went to different workers
    mtimes = {name: (out / name).stat().st_mtime_ns for name in expected_frames}

    code, log, again = _batch(jobs, out, tiny_models_dir)
    assert code == 1, log
    assert (again["done"], again["skipped"], again["failed"]) == (0, 3, 1), log
    for r in again["results"]:
        if r["job_id"] in expected_frames:
            assert r["status"] == "skipped" and r["frames"] == by_id[r["job_id"]]["frames"]
    assert {name: (out / name).stat().st_mtime_ns for name in expected_frames} == mtimes  # not written again
