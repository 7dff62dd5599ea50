"""``batch``: many animations from a JSONL file of jobs, on Ray (local, or a cluster with ``--address``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("jobs", type=Path,
                   help="JSONL file: one JSON object a line, its keys the animate options (reference, driving, out, "
                        "width, steps, ...; out relative to --out, input paths relative to the file's folder)")
    p.add_argument("--out", required=True, type=Path, help="output folder (videos, <video>.job.json, summary.json)")
    p.add_argument("--models", type=Path, default=Path("models"), help="models folder of jobs that name none")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. ray://head:10001 or auto); default: a local Ray instance")
    p.add_argument("--workers", type=int, default=None,
                   help="number of workers (default: one per GPU; without GPUs, 1 CPU worker)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPU cores (torch threads) per worker")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--summary", type=Path, default=None, help="summary JSON (default: OUT/summary.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..batch.jobs import read_jobs
    from ..errors import DependencyError, InputError

    if not args.jobs.is_file():
        raise InputError(f"the jobs file {args.jobs} does not exist")
    if args.workers is not None and args.workers < 1 or args.cpus_per_worker < 1:
        raise InputError("--workers and --cpus-per-worker must be at least 1")
    try:
        from ..batch.ray_runner import run_batch
    except ImportError as exc:
        raise DependencyError(f"the batch command runs on Ray, which is not installed ({exc}). "
                              f"Install it with: pip install -r requirements-cluster.txt") from exc
    jobs = read_jobs(args.jobs, args.out, args.models)
    summary_path = args.summary or args.out / "summary.json"
    summary = run_batch(jobs, summary_path, address=args.address, workers=args.workers,
                        cpus_per_worker=args.cpus_per_worker, num_cpus=args.num_cpus, progress=not args.no_progress)
    print(f"{summary['jobs']} jobs: {summary['done']} done, {summary['skipped']} skipped, "
          f"{summary['failed']} failed; summary in {summary_path}")
    return 1 if summary["failed"] else 0
