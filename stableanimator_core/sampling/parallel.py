"""One video on several processes (``torchrun``): the denoising work of each step divided, the result unchanged.

Within a denoising step the windows are independent UNet calls, and so are the unconditional and conditional
halves of classifier-free guidance. :class:`WorkSplit` says which of these units a process computes; the
:class:`PredictionBlend` it makes collects this process's window outputs and returns the blended prediction of
all windows. Each window's output gets its own slot; the slots are summed over processes (every slot is
non-zero on exactly one process, so the sum is exact) and then blended in window order on every process, with
the very float operations of the single-process blend. Every process therefore holds the single-process
prediction, bit for bit when its UNet calls give the single-process outputs, and identical latents.

Without a split (``split=None`` or one process) :class:`PredictionBlend` accumulates directly, as before.
The HJB face optimisation divides its decode chunks the same way (``hjb.refine``, exact because the chunks'
gradients touch disjoint frames).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch

log = logging.getLogger(__name__)

UNCOND, COND = 0, 1
SplitMode = Literal["auto", "windows", "cfg"]
SPLIT_MODES: tuple[str, ...] = ("auto", "windows", "cfg")


@dataclass(frozen=True)
class WorkSplit:
    """This process's share: ``rank`` of ``world_size``; ``mode`` chooses the units (see :meth:`units`)."""

    rank: int
    world_size: int
    mode: SplitMode = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside 0..{self.world_size - 1}")
        if self.mode not in SPLIT_MODES:
            raise ValueError(f"split mode must be one of {', '.join(SPLIT_MODES)}, got {self.mode!r}")

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def splits_cfg(self, num_windows: int) -> bool:
        """Whether the CFG halves are separate units. ``auto``: only when that shortens the longest share
        (counted in half-window UNet batches), e.g. one window on two processes, or 3 windows on 2."""
        if self.mode != "auto":
            return self.mode == "cfg"
        by_window = -(-num_windows // self.world_size) * 2
        by_half = -(-2 * num_windows // self.world_size)
        return by_half < by_window

    def units(self, num_windows: int) -> list[tuple[int, tuple[int, ...]]]:
        """``(window, branches)`` this process computes, in window order; branches ⊂ (UNCOND, COND).

        Units are dealt round-robin: windows ``rank, rank + N, ...``; with CFG split the halves in the order
        (window 0 uncond, window 0 cond, window 1 uncond, ...), so two processes take one half each.
        """
        if not self.splits_cfg(num_windows):
            return [(w, (UNCOND, COND)) for w in range(num_windows) if w % self.world_size == self.rank]
        mine: dict[int, tuple[int, ...]] = {}
        for k in range(2 * num_windows):
            if k % self.world_size == self.rank:
                mine[k // 2] = mine.get(k // 2, ()) + (k % 2,)
        return sorted(mine.items())

    def describe(self, num_windows: int) -> str:
        """For the log, e.g. ``rank 0/2: windows 0, 2`` or ``rank 1/2: conditional half of windows 0, 1``."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for w, branches in self.units(num_windows):
            groups.setdefault(branches, []).append(w)
        names = {(UNCOND, COND): "windows", (UNCOND,): "unconditional half of windows",
                 (COND,): "conditional half of windows"}
        parts = [f"{names[b]} {', '.join(map(str, ws))}" for b, ws in sorted(groups.items(), key=lambda g: -len(g[0]))]
        return f"rank {self.rank}/{self.world_size}: {'; '.join(parts) or 'no windows'} (of {num_windows})"


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over all processes of the default group (gloo: CPU tensors; NCCL: CUDA tensors)."""
    import torch.distributed as dist

    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class PredictionBlend:
    """Blends window predictions ``[rows, F, C, h, w]`` (one row per requested CFG branch) with the windows'
    weights, in float32.

    ``window_index``: each window's frame indices as a tensor on the device; ``weight_sums``: the per-frame sum
    of the window weights ``[F, 1, 1, 1]`` (both built once per video by the denoiser, so no step reads the host).
    ``add(w, row, out)`` takes this process's output ``[n, C, h, w]`` of window ``w``; ``result()`` returns the
    weight-normalised blend of all windows (on every process of a split).
    """

    def __init__(self, window_index: Sequence[torch.Tensor], weights: torch.Tensor, weight_sums: torch.Tensor,
                 rows: int, frame_shape: tuple[int, ...], split: Optional[WorkSplit] = None):
        self.window_index = window_index
        self.wv = weights[:, None, None, None]
        self.weight_sums = weight_sums
        self.rows = rows
        self.split = split if split is not None and split.active else None
        shape = (rows, weight_sums.shape[0], *frame_shape)
        device = weights.device
        if self.split is None:
            self.pred = torch.zeros(shape, device=device)
        else:
            self.slots = torch.zeros((len(window_index), rows, weights.shape[0], *frame_shape), device=device)

    def add(self, window: int, row: int, out: torch.Tensor) -> None:
        if self.split is None:
            self.pred[row].index_add_(0, self.window_index[window], out * self.wv)
        else:
            self.slots[window, row] = out

    def result(self) -> torch.Tensor:
        if self.split is None:
            pred = self.pred
        else:
            slots = all_reduce_sum(self.slots)
            pred = torch.zeros((self.rows, self.weight_sums.shape[0], *slots.shape[3:]), device=slots.device)
            for w, idx in enumerate(self.window_index):  # the single-process order of additions
                for row in range(self.rows):
                    pred[row].index_add_(0, idx, slots[w, row] * self.wv)
        return pred / self.weight_sums


def _uses_cuda(requested: Optional[str]) -> bool:
    return torch.cuda.is_available() and (requested is None or requested.startswith("cuda"))


def split_from_environment(mode: SplitMode = "auto", device: Optional[str] = None) -> Optional[WorkSplit]:
    """The split of a process started by ``torchrun`` (``WORLD_SIZE`` > 1), joining the process group if needed
    (NCCL when sampling on CUDA, else gloo); None for a plain single process. ``device``: the requested one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        if _uses_cuda(device):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if _uses_cuda(device) else "gloo")
    return WorkSplit(dist.get_rank(), dist.get_world_size(), mode)


def rank_device(split: Optional[WorkSplit], requested: Optional[str]) -> Optional[torch.device]:
    """Each process of a CUDA split gets its own GPU (``LOCAL_RANK``); otherwise the requested device."""
    if split is not None and split.active and _uses_cuda(requested):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(requested) if requested else None


def broadcast_(tensors: Sequence[torch.Tensor], split: Optional[WorkSplit]) -> None:
    """Overwrites ``tensors`` in place with rank 0's values, so every process samples from the same inputs even
    where preprocessing (DWPose, CLIP on a GPU) is not bit-reproducible across devices."""
    if split is None or not split.active:
        return
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    for t in tensors:
        moved = t.to(device).contiguous()
        dist.broadcast(moved, src=0)
        t.copy_(moved.to(t.device))


def broadcast_object(obj, split: Optional[WorkSplit]):
    """Rank 0's ``obj`` (picklable) on every process: for inputs kept off tensors, such as the keypoints whose
    skeletons the command line packs compressed."""
    if split is None or not split.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish(split: Optional[WorkSplit]) -> None:
    """Leaves the process group. No barrier: after sampling only rank 0 works (decoding, writing), and a
    barrier would time out on a long decode; torchrun waits for every process anyway."""
    if split is None or not split.active:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
