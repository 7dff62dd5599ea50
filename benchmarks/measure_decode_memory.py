#!/usr/bin/env python
"""Peak activation memory of SVD's temporal VAE decoder per frame and pixel (the constant behind
``acceleration.DECODE_BYTES_PER_PIXEL_FP32``).

Every tensor storage the decode creates is tracked (a ``TorchDispatchMode``) until it is freed, so the peak is
the decoder's own live activations, independent of the allocator and of the device. Full-size decoder, random
weights, float32, CPU; a few small sizes and chunk lengths (the result is linear in frames x pixels).

  python benchmarks/measure_decode_memory.py --sizes 16x16,32x32 --chunks 1,2,4
"""

from __future__ import annotations

import argparse
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_models import fullsize_configs, make_vae  # noqa: E402


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages created inside the mode that are still alive."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, n = storage.data_ptr(), storage.nbytes()
            if n == 0 or key in self._seen:
                continue  # a view, or an in-place result
            self._seen.add(key)
            self.live += n
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key, n)
        return out

    def _free(self, key: int, n: int) -> None:
        self.live -= n
        self._seen.discard(key)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="16x16,32x32", help="latent h x w list")
    p.add_argument("--chunks", default="1,2,4")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vae = make_vae(fullsize_configs()).eval().requires_grad_(False)
    print(f"{'latent':>8s} {'frames':>6s} {'peak MiB':>9s} {'B/(frame*px)':>13s} {'s':>6s}")
    for size in a.sizes.split(","):
        h, w = (int(x) for x in size.split("x"))
        for chunk in (int(c) for c in a.chunks.split(",")):
            z = torch.randn(chunk, 4, h, w)
            with torch.no_grad(), LiveBytes() as mem:
                t0 = time.perf_counter()
                vae.decode(z, num_frames=chunk)
                dt = time.perf_counter() - t0
            px = h * 8 * w * 8
            print(f"{size:>8s} {chunk:6d} {mem.peak / 2**20:9.1f} {mem.peak / chunk / px:13.1f} {dt:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
