"""Timing, peak memory, FLOP counting and the matmul ceiling for the pipeline benchmark.

* Stage times: CUDA events recorded at the stage boundaries (with a synchronize, so a stage's kernels are all
  inside it); on CPU ``time.perf_counter``.
* Peak memory per stage: CUDA ``max_memory_allocated`` after ``reset_peak_memory_stats`` at the stage start,
  minus what was allocated at the start (also the absolute peak); CPU: growth of the resident set size over the
  stage, sampled every millisecond by a background thread from ``/proc/self/statm`` after glibc ``malloc_trim``
  (spikes shorter than a sample can be missed; page-cache and allocator behaviour make it approximate).
* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device with the real shapes (there SDPA
  decomposes into counted matmuls; on CPU its fused kernel would be missed). Matmuls and convolutions only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _RssSampler:
    """Max resident set size since the last ``reset``, sampled in a daemon thread."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.max = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def reset(self) -> int:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back, so growth is real growth
        now = self.rss()
        self.max = now
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            r = self.rss()
            if r > self.max:
                self.max = r
            time.sleep(self.interval_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StageRecord:
    name: str
    seconds: float
    peak_bytes: int  # growth over the stage (CPU) / allocated above the stage start (CUDA)
    peak_abs_bytes: int  # absolute: RSS (CPU) / max_memory_allocated (CUDA)


class StageClock:
    """Consecutive stages: ``start(name)`` ends the running stage and begins the next; ``stop()`` ends it."""

    def __init__(self, device: torch.device):
        self.device = device
        self.records: list[StageRecord] = []
        self._name: Optional[str] = None
        self._rss = _RssSampler() if device.type != "cuda" else None

    def _begin(self, name: str) -> None:
        self._name = name
        if self.device.type == "cuda":
            synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._event = torch.cuda.Event(enable_timing=True)
            self._event.record()
        else:
            self._base = self._rss.reset()
            self._t0 = time.perf_counter()

    def start(self, name: str) -> None:
        self.stop()
        self._begin(name)

    def stop(self) -> None:
        if self._name is None:
            return
        if self.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            synchronize(self.device)
            seconds = self._event.elapsed_time(end) / 1000
            peak_abs = torch.cuda.max_memory_allocated(self.device)
        else:
            seconds = time.perf_counter() - self._t0
            peak_abs = max(self._rss.max, self._rss.rss())
        self.records.append(StageRecord(self._name, seconds, peak_abs - self._base, peak_abs))
        self._name = None

    def close(self) -> None:
        self.stop()
        if self._rss is not None:
            self._rss.close()

    def take(self) -> list[StageRecord]:
        records, self.records = self.records, []
        return records


@dataclass
class Summary:
    median: float
    min: float
    max: float
    n: int
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float]) -> Optional["Summary"]:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values), list(values))


# ----------------------------------------------------------------------------- ceiling and FLOPs

def matmul_ceiling(device: torch.device, dtype: torch.dtype, target_s: float = 1.0, repeats: int = 3) -> dict:
    """Achieved TFLOP/s of one square GEMM: 8192^3 on CUDA; on CPU sized so one product takes ~``target_s``."""
    def run(n: int, reps: int) -> float:
        a = torch.randn(n, n, device=device, dtype=torch.float32).to(dtype)
        b = torch.randn(n, n, device=device, dtype=torch.float32).to(dtype)
        a @ b  # warm-up (kernel selection, page faults)
        times = []
        for _ in range(reps):
            if device.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                synchronize(device)
                s.record()
                a @ b
                e.record()
                synchronize(device)
                times.append(s.elapsed_time(e) / 1000)
            else:
                t0 = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    if device.type == "cuda":
        n = 8192
        t = run(n, 10)
    else:
        n = 1024
        t = run(n, 1)
        n = int(min(8192, max(512, n * (target_s / max(t, 1e-4)) ** (1 / 3))) // 64 * 64)
        t = run(n, repeats)
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "seconds": t, "tflops": 2 * n**3 / t / 1e12}


def count_flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
