"""Batch jobs: one JSON object per line of a JSONL file, its keys the ``animate`` command's options.

Each object is checked by the ``animate`` argument parser itself (same names, types, choices and defaults as the
command line; ``-`` or ``_`` in names), so a typo is an error for that job, never a silently ignored key.
Paths: ``out`` is relative to the batch's output folder; ``reference``, ``driving`` and ``models`` are relative
to the folder of the JSONL file; a job without ``models`` uses the batch's default models folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# options that name files; resolved to absolute paths so workers on any node see the same job
_INPUT_PATHS = ("reference", "driving", "models")
# options that do not change the video (where it goes, which engine runs it)
_NOT_HASHED = ("out", "id", "provider", "device", "parallel")


@dataclass
class BatchJob:
    """One line of the jobs file: ``options`` are the parsed ``animate`` options (JSON-safe), or ``error``."""

    line: int
    job_id: str
    options: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    settings_hash: Optional[str] = None

    @property
    def out(self) -> Optional[Path]:
        return Path(self.options["out"]) if "out" in self.options else None


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print and exit the whole batch
        raise ValueError(message)


def _animate_parser() -> argparse.ArgumentParser:
    from ..cli import animate_command

    parser = _RaisingParser(prog="job", add_help=False)
    animate_command.add_arguments(parser)
    return parser


def _option_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings}


def _to_argv(obj: dict[str, Any], flags: dict[str, argparse.Action]) -> list[str]:
    argv: list[str] = []
    for key, value in obj.items():
        dest = key.replace("-", "_")
        if dest not in flags:
            known = ", ".join(sorted(flags))
            raise ValueError(f"unknown option {key!r} (the animate options are: {known})")
        action = flags[dest]
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise ValueError(f"option {key!r} is a switch: give true or false, not {value!r}")
            if value:
                argv.append(action.option_strings[0])
            continue
        if value is None:
            continue  # null = the default
        if isinstance(value, (dict, list, bool)):
            raise ValueError(f"option {key!r} must be a number or a string, not {value!r}")
        argv += [action.option_strings[0], str(value)]
    return argv


def parse_job(obj: Any, line: int, jobs_dir: Path, out_dir: Path, default_models: Path,
              parser: Optional[argparse.ArgumentParser] = None) -> BatchJob:
    """One JSON value -> a job with absolute paths; problems become the job's ``error``."""
    job_id = str(obj.get("id", obj.get("out", f"line {line}"))) if isinstance(obj, dict) else f"line {line}"
    job = BatchJob(line=line, job_id=job_id)
    try:
        if not isinstance(obj, dict):
            raise ValueError(f"a job must be a JSON object, got {type(obj).__name__}")
        parser = parser or _animate_parser()
        obj = {k: v for k, v in obj.items() if k != "id"}
        obj.setdefault("models", str(default_models))
        namespace = parser.parse_args(_to_argv(obj, _option_flags(parser)))
        from ..cli.animate_command import options_from_args

        opts = options_from_args(namespace)  # the preset's choices where the job gives none, as the command
        options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items() if k != "timings"}
        for key in _INPUT_PATHS:
            options[key] = str((jobs_dir / options[key]).resolve())
        out = Path(options["out"])
        if out.is_absolute() or ".." in out.parts:
            raise ValueError(f"'out' must be a path inside the output folder (relative, no '..'), got {out}")
        options["out"] = str((out_dir / out).resolve())
        job.options = options
    except ValueError as exc:
        job.error = f"line {line}: {exc}"
    return job


def read_jobs(jobs_file: Path, out_dir: Path, default_models: Path) -> list[BatchJob]:
    """Every job of a JSONL file (blank lines and ``#`` comments skipped), each parsed or with its error.

    ``default_models`` is taken as given (relative to the working directory), like the command's ``--models``.
    """
    jobs_file = Path(jobs_file)
    jobs_dir = jobs_file.resolve().parent
    parser = _animate_parser()
    jobs: list[BatchJob] = []
    for n, text in enumerate(jobs_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            jobs.append(BatchJob(line=n, job_id=f"line {n}", error=f"line {n}: not valid JSON ({exc})"))
            continue
        jobs.append(parse_job(obj, n, jobs_dir, Path(out_dir), Path(default_models).resolve(), parser))
    _refuse_shared_outputs(jobs)
    return jobs


def _refuse_shared_outputs(jobs: list[BatchJob]) -> None:
    first: dict[str, BatchJob] = {}
    for job in jobs:
        if job.error is None:
            other = first.setdefault(job.options["out"], job)
            if other is not job:
                job.error = f"line {job.line}: same 'out' as line {other.line} ({job.options['out']})"


def _digest_path(path: Path, h: "hashlib._Hash") -> None:
    if path.is_dir():  # a folder of driving frames: names and contents, in name order
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            h.update(child.name.encode())
            _digest_path(child, h)
        return
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def settings_hash(options: dict[str, Any]) -> str:
    """Fingerprint of what makes the video: every option but where it goes, and the input files' contents.

    Model weights are identified by their folder only (hashing GBs per job would cost more than it saves).
    Raises ``FileNotFoundError`` for a missing reference or driving file.
    """
    h = hashlib.sha256()
    kept = {k: v for k, v in sorted(options.items()) if k not in _NOT_HASHED}
    h.update(json.dumps(kept, sort_keys=True).encode())
    for key in ("reference", "driving"):
        path = Path(options[key])
        if not path.exists():
            raise FileNotFoundError(f"the {key} {path} does not exist")
        _digest_path(path, h)
    return h.hexdigest()[:16]
