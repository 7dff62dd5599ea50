"""Batch jobs without Ray: each JSONL line checked by the animate parser, paths, settings hash, resume markers."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from stableanimator_core.batch.jobs import read_jobs, settings_hash
from stableanimator_core.batch.records import (DONE, FAILED, SKIPPED, JobRecord, finished_record, marker_path,
                                               record_without_worker, write_marker)

REPO = Path(__file__).resolve().parents[2]


def _jobs_file(tmp_path: Path, *objects) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "ref.png").write_bytes(b"reference bytes")
    (tmp_path / "in" / "dance.mp4").write_bytes(b"driving bytes")
    path = tmp_path / "in" / "jobs.jsonl"
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objects) + "\n")
    return path


JOB = {"reference": "ref.png", "driving": "dance.mp4", "out": "a/one.mp4"}


def test_options_are_parsed_like_the_command_line(tmp_path):
    path = _jobs_file(tmp_path, {**JOB, "width": 576, "max-frames": 9, "tile_size": 8, "hjb": True, "fps": None},
                      "", "# a comment", {**JOB, "out": "two.mp4", "models": "../my_models", "id": "second"})
    first, second = read_jobs(path, tmp_path / "out", Path("default_models"))
    assert first.error is None and second.error is None
    o = first.options
    assert (o["width"], o["height"], o["max_frames"], o["tile_size"], o["hjb"], o["steps"]) == (576, 512, 9, 8, True, 25)
    assert o["reference"] == str(tmp_path / "in" / "ref.png")  # relative to the jobs file
    assert o["out"] == str(tmp_path / "out" / "a" / "one.mp4")  # relative to the output folder
    assert o["models"] == str(Path("default_models").resolve())  # the batch default, from the working directory
    assert first.job_id == "a/one.mp4" and first.line == 1
    assert second.job_id == "second" and second.line == 4
    assert second.options["models"] == str(tmp_path / "my_models")


def test_a_preset_fills_the_options_a_job_leaves_out(tmp_path):
    path = _jobs_file(tmp_path, {**JOB, "preset": "official"}, {**JOB, "out": "b.mp4", "preset": "official",
                                                                "missing": "empty"}, {**JOB, "out": "c.mp4"})
    official, overridden, pack = (j.options for j in read_jobs(path, tmp_path / "out", Path("m")))
    assert (official["missing"], overridden["missing"], pack["missing"]) == ("whole_image", "empty", "empty")
    assert settings_hash(official) != settings_hash(pack)


@pytest.mark.parametrize("obj, message", [
    ({**JOB, "widht": 512}, "unknown option 'widht'"),
    ({**JOB, "width": "wide"}, "invalid int value"),
    ({**JOB, "hjb": "yes"}, "is a switch"),
    ({**JOB, "precision": "fp64"}, "invalid choice"),
    ({"reference": "ref.png", "out": "x.mp4"}, "required: --driving"),
    ({**JOB, "out": "../escape.mp4"}, "inside the output folder"),
    ("[1, 2]", "must be a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_a_bad_line_is_an_error_of_that_job_only(tmp_path, obj, message):
    jobs = read_jobs(_jobs_file(tmp_path, obj, {**JOB, "out": "good.mp4"}), tmp_path / "out", Path("m"))
    assert jobs[0].error is not None and message in jobs[0].error and jobs[0].error.startswith("line 1:")
    assert jobs[1].error is None


def test_two_jobs_writing_one_video_are_refused(tmp_path):
    jobs = read_jobs(_jobs_file(tmp_path, JOB, {**JOB, "seed": 2}), tmp_path / "out", Path("m"))
    assert jobs[0].error is None and "same 'out' as line 1" in jobs[1].error


def test_settings_hash_follows_what_makes_the_video(tmp_path):
    path = _jobs_file(tmp_path, JOB, {**JOB, "out": "elsewhere.mp4", "provider": "cpu"}, {**JOB, "out": "b.mp4",
                                                                                           "steps": 24})
    a, moved, fewer_steps = (settings_hash(j.options) for j in read_jobs(path, tmp_path / "out", Path("m")))
    assert a == moved  # where the video goes and which engine runs it do not change it
    assert a != fewer_steps
    (tmp_path / "in" / "ref.png").write_bytes(b"another reference")
    assert settings_hash(read_jobs(path, tmp_path / "out", Path("m"))[0].options) != a


def test_settings_hash_of_a_missing_input_says_which(tmp_path):
    path = _jobs_file(tmp_path, {**JOB, "driving": "missing.mp4"})
    with pytest.raises(FileNotFoundError, match="the driving .*missing.mp4 does not exist"):
        settings_hash(read_jobs(path, tmp_path / "out", Path("m"))[0].options)


def test_a_job_counts_as_finished_only_with_its_video_and_the_same_settings(tmp_path):
    out = tmp_path / "v.mp4"
    record = JobRecord("v", 1, DONE, out=str(out), settings_hash="abc", frames=3)
    write_marker(record)
    assert finished_record(out, "abc") is None  # marker without the video
    out.write_bytes(b"video")
    assert finished_record(out, "abc").frames == 3
    assert finished_record(out, "other settings") is None
    marker_path(out).write_text("{truncated")
    assert finished_record(out, "abc") is None


def test_jobs_that_need_no_worker(tmp_path):
    path = _jobs_file(tmp_path, {**JOB, "widht": 1}, {**JOB, "out": "b.mp4", "reference": "gone.png"},
                      {**JOB, "out": "c.mp4"})
    bad, missing, fresh = read_jobs(path, tmp_path / "out", Path("m"))
    assert record_without_worker(bad).status == FAILED
    record = record_without_worker(missing)
    assert record.status == FAILED and "the reference" in record.error and "gone.png does not exist" in record.error
    assert record_without_worker(fresh) is None and fresh.settings_hash  # goes to a worker, hash computed
    (tmp_path / "out").mkdir()
    Path(fresh.options["out"]).write_bytes(b"video")
    write_marker(JobRecord("c", 3, DONE, out=fresh.options["out"], settings_hash=fresh.settings_hash, frames=7))
    done = record_without_worker(fresh)
    assert (done.status, done.frames, done.line) == (SKIPPED, 7, 3)


def test_only_the_ray_runner_imports_ray():
    """Ray is optional: the nodes, the core and the other commands must work without it."""
    importers = []
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n == "ray" or n.startswith("ray.") for n in names):
                importers.append(path.relative_to(REPO).as_posix())
    assert importers == ["stableanimator_core/batch/ray_runner.py"]
