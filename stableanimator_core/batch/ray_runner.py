"""Runs batch jobs on Ray: one worker actor per GPU (or N CPU workers) keeps the models loaded; jobs are its tasks.

The driver (this module's :func:`run_batch`) skips finished jobs, hands each idle worker the next job, records
every result as it arrives (a failing job is recorded with its message and the batch goes on) and writes the
summary. On a cluster every node must see the same paths (a shared filesystem): workers read the inputs and
write the videos where the jobs file says.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

import ray

from ..errors import StableAnimatorError
from .jobs import BatchJob
from .records import DONE, FAILED, JobRecord, record_without_worker, write_marker, write_summary

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]


class AnimationWorker:
    """A Ray actor: loads the models a job needs (kept for the next job with the same models) and runs jobs."""

    def __init__(self, threads: Optional[int] = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._loaded = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        gpus = ray.get_gpu_ids()
        if gpus:
            self.name += f":gpu{','.join(str(g) for g in gpus)}"

    def describe(self) -> str:
        return self.name

    def run(self, job_id: str, line: int, options: dict[str, Any], job_hash: str) -> dict[str, Any]:
        from ..cli.job import AnimateOptions, animate_job, job_models_key, load_job_models, plan_animation

        record = JobRecord(job_id=job_id, line=line, status=FAILED, out=options["out"], settings_hash=job_hash,
                           worker=self.name)
        start = time.perf_counter()
        try:
            opts = AnimateOptions(**{k: v for k, v in options.items() if k in AnimateOptions.__dataclass_fields__})
            for key in ("reference", "driving", "out", "models"):
                setattr(opts, key, Path(getattr(opts, key)))
            plan = plan_animation(opts)  # a bad input fails before any model loads, as on the command line
            if self._loaded is None or self._loaded.key != job_models_key(opts):
                self._loaded = None  # free the previous models before loading others
                self._loaded = load_job_models(opts)
            result = animate_job(opts, self._loaded, score_identity=True, plan=plan)
            record.status, record.frames, record.timings = DONE, result.frames, result.timings
            if result.identity is not None:
                record.identity_score = result.identity.mean
                record.frames_with_face = len(result.identity.valid)
            record.time_s = round(time.perf_counter() - start, 3)
            write_marker(record)
        except Exception as exc:  # noqa: BLE001 - any failure of one job is recorded and the batch goes on
            record.status, record.error = FAILED, f"{type(exc).__name__}: {exc}"
            record.time_s = round(time.perf_counter() - start, 3)
        return record.to_json()


def _start_ray(address: Optional[str], num_cpus: Optional[int]) -> None:
    try:
        _init_ray(address, num_cpus)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise StableAnimatorError(f"could not start or join {where} ({type(exc).__name__}: {exc}). Check "
                                  f"--address (e.g. auto on a cluster node, or ray://HEAD:10001)") from exc


def _init_ray(address: Optional[str], num_cpus: Optional[int]) -> None:
    if address:
        # remote nodes get this package's code from the driver; inputs and outputs must be on shared storage
        ray.init(address=address, runtime_env={"py_modules": [str(PACKAGE_DIR)]}, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": {"PYTHONPATH": str(PACKAGE_DIR.parent)}})


def _make_workers(workers: Optional[int], cpus_per_worker: int, jobs: int) -> list:
    """One actor per GPU of the cluster (at most ``workers``), else ``workers`` CPU actors (default 1)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(AnimationWorker)
    if gpus:
        count = min(workers or gpus, gpus, jobs)
        return [remote.options(num_gpus=1, num_cpus=cpus_per_worker, max_restarts=1).remote()
                for _ in range(count)]
    return [remote.options(num_cpus=cpus_per_worker, max_restarts=1).remote(cpus_per_worker)
            for _ in range(min(workers or 1, jobs))]


def run_batch(jobs: list[BatchJob], summary_path: Path, address: Optional[str] = None,
              workers: Optional[int] = None, cpus_per_worker: int = 1, num_cpus: Optional[int] = None,
              progress: bool = True) -> dict[str, Any]:
    """Runs the jobs and writes the summary JSON; returns the summary."""
    from tqdm import tqdm

    start = time.perf_counter()
    records: list[JobRecord] = []
    pending: list[BatchJob] = []
    for job in jobs:
        record = record_without_worker(job)
        if record is None:
            pending.append(job)
        else:
            records.append(record)
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress, initial=len(records))
    names: list[str] = []
    try:
        if pending:
            _start_ray(address, num_cpus)
            try:
                actors = _make_workers(workers, cpus_per_worker, len(pending))
                names = _run_on_workers(pending, actors, records, bar)
            finally:
                ray.shutdown()
    finally:  # also on Ctrl-C: the summary says what was done (finished videos have their markers anyway)
        bar.close()
        summary = write_summary(summary_path, records, time.perf_counter() - start, names)
    for r in records:
        if r.status == FAILED:
            log.error("job %s failed: %s", r.job_id, r.error)
    return summary


def _run_on_workers(pending: list[BatchJob], actors: list, records: list[JobRecord], bar) -> list[str]:
    names = ray.get([a.describe.remote() for a in actors])
    log.info("%d worker(s): %s", len(actors), ", ".join(names))
    queue = list(reversed(pending))
    running: dict[Any, tuple[BatchJob, Any]] = {}

    def submit(actor) -> None:
        job = queue.pop()
        ref = actor.run.remote(job.job_id, job.line, job.options, job.settings_hash)
        running[ref] = (job, actor)

    for actor in actors:
        if queue:
            submit(actor)
    while running:
        done, _ = ray.wait(list(running), num_returns=1)
        job, actor = running.pop(done[0])
        try:
            record = JobRecord.from_json(ray.get(done[0]))
        except ray.exceptions.RayError as exc:  # the worker process died (e.g. killed for memory)
            record = JobRecord(job.job_id, job.line, FAILED, out=job.options["out"], settings_hash=job.settings_hash,
                               error=f"the worker died running this job: {type(exc).__name__}: {exc}")
        records.append(record)
        bar.update(1)
        bar.set_postfix_str(f"{sum(r.status == FAILED for r in records)} failed")
        if queue:
            submit(actor)
    return names
