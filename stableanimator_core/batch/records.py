"""Per-job results, the resume marker beside each video and the batch summary.

A finished job leaves ``<out>.job.json`` (its settings hash and result) next to its video, written after the
video; a later run skips a job whose video and marker exist with the same settings hash. A job that fails
leaves no marker, so it runs again next time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .jobs import BatchJob, settings_hash

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class JobRecord:
    job_id: str
    line: int
    status: str
    out: Optional[str] = None
    settings_hash: Optional[str] = None
    time_s: Optional[float] = None  # wall time of the job on its worker (of the earlier run for a skipped job)
    frames: Optional[int] = None
    identity_score: Optional[float] = None  # mean ArcFace cosine to the reference over frames with a face
    frames_with_face: Optional[int] = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: Optional[str] = None
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobRecord":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def marker_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".job.json")


def write_marker(record: JobRecord) -> None:
    path = marker_path(record.out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=1))
    os.replace(tmp, path)  # never a half-written marker that a later run would trust


def finished_record(out: str | Path, settings_hash: str) -> Optional[JobRecord]:
    """The earlier result of this job if its video exists and was made with these settings, else None."""
    marker = marker_path(out)
    if not Path(out).is_file() or not marker.is_file():
        return None
    try:
        record = JobRecord.from_json(json.loads(marker.read_text()))
    except (ValueError, TypeError):
        return None  # unreadable marker: run the job again
    return record if record.settings_hash == settings_hash and record.status == DONE else None


def write_summary(path: Path, records: list[JobRecord], wall_s: float, workers: list[str]) -> dict[str, Any]:
    records = sorted(records, key=lambda r: r.line)
    counts = {s: sum(r.status == s for r in records) for s in (DONE, SKIPPED, FAILED)}
    summary = {"jobs": len(records), **counts, "wall_s": round(wall_s, 3), "workers": workers,
               "results": [r.to_json() for r in records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, path)
    return summary


def record_without_worker(job: BatchJob) -> Optional[JobRecord]:
    """A record for a job that needs no worker (bad line, missing input, already done); else None, hash set."""
    if job.error is not None:
        return JobRecord(job.job_id, job.line, FAILED, error=job.error)
    try:
        job.settings_hash = settings_hash(job.options)
    except OSError as exc:
        return JobRecord(job.job_id, job.line, FAILED, out=job.options["out"], error=f"line {job.line}: {exc}")
    earlier = finished_record(job.options["out"], job.settings_hash)
    if earlier is not None:
        earlier.status, earlier.job_id, earlier.line = SKIPPED, job.job_id, job.line
        return earlier
    return None
