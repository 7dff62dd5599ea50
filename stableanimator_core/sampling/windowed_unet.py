"""One evaluation of the UNet over a whole video: the official frame windows, blended per branch.

A *branch* is one conditioning of the same noisy video (the official sampler has two: unconditional and
conditional). Every window of every branch goes through the UNet; predictions are blended with the triangular
window weights and normalised per frame. Guidance is not applied here: the blend is linear, so blending each
branch and then mixing them (the pack's Euler loop, or ComfyUI's CFG) equals the official mix-then-blend up to
float rounding. This is the only place that runs the StableAnimator UNet over windows: the pack's
:class:`.denoiser.WindowedDenoiser` and the ComfyUI model's :class:`.frame_batch.FrameBatchDenoiser` both call it.

Nothing in :func:`windowed_prediction` reads the host: the window index tensors and the per-frame weight sums
are built on the device once (:class:`DeviceWindows`), and branches are selected by slicing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .parallel import PredictionBlend, WorkSplit
from .windows import window_weights

LATENT_CHANNELS = 4


@dataclass
class Branches:
    """Per-branch conditioning, stacked on the first dimension (B branches)."""

    encoder_hidden_states: torch.Tensor  # [B, 1 + tokens, D]
    added_time_ids: torch.Tensor  # [B, 3]
    reference_latents: torch.Tensor  # [B, 4, h, w] (zeros = the official unconditional branch)
    has_pose: Sequence[bool]  # per branch; False = no pose features (what the official unconditional pass gets)

    @property
    def count(self) -> int:
        return int(self.encoder_hidden_states.shape[0])


class DeviceWindows:
    """A video's frame windows as index tensors on the device, with their blending weights and per-frame sums."""

    def __init__(self, windows: Sequence[Sequence[int]], device: torch.device | str):
        self.windows = [list(w) for w in windows]
        self.device = torch.device(device)
        self.index = [torch.tensor(w, device=self.device) for w in self.windows]
        self.weights = window_weights(len(self.windows[0]), device=self.device)
        sums = torch.zeros(max(max(w) for w in self.windows) + 1, device=self.device)
        for idx in self.index:
            sums[idx] += self.weights
        self.weight_sums = sums[:, None, None, None]

    @property
    def count(self) -> int:
        return len(self.windows)


@dataclass
class WindowCall:
    """What one UNet evaluation of a window saw and returned (for progress, Cancel and the parity recorder)."""

    window: int
    branches: tuple[int, ...]  # the branches evaluated, in the order of the rows below
    timestep: torch.Tensor  # [len(branches)]
    inputs: torch.Tensor  # UNet input [len(branches), T, 8, h, w]
    outputs: torch.Tensor  # UNet output [len(branches), T, 4, h, w]
    encoder_hidden_states: torch.Tensor  # [len(branches), tokens, D]
    added_time_ids: torch.Tensor  # [len(branches), 3]
    pose: Optional[torch.Tensor]  # the pose features added to the posed branches (None where pose is off)

    def row(self, branch: int) -> int:
        return self.branches.index(branch)


PoseLookup = Callable[[int], torch.Tensor]  # window number -> PoseNet features of its frames [T, C, h, w]


def work_units(num_windows: int, num_branches: int,
               split: Optional[WorkSplit] = None) -> list[tuple[int, tuple[int, ...]]]:
    """``(window, branches)`` this process evaluates: all of them without a split."""
    if split is not None and split.active:
        return split.units(num_windows)
    return [(wi, tuple(range(num_branches))) for wi in range(num_windows)]


def _take(t: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """Rows of ``t``; a slice where they are consecutive (always, for the uncond/cond pair), so no index copy."""
    if list(rows) == list(range(rows[0], rows[-1] + 1)):
        return t[rows[0] : rows[-1] + 1]
    return t[list(rows)]


def windowed_prediction(unet: torch.nn.Module, scaled: torch.Tensor, timestep: torch.Tensor, branches: Branches,
                        pose_for: PoseLookup, windows: DeviceWindows, batch_branches: bool = True,
                        on_window: Optional[Callable[[WindowCall], None]] = None, pose_scale: float = 1.0,
                        id_scale: float = 1.0, split: Optional[WorkSplit] = None,
                        wanted: Optional[Sequence[int]] = None) -> torch.Tensor:
    """The UNet's window-blended output for the ``wanted`` branches (default all), ``[len(wanted), F, 4, h, w]``
    float32, in the order of ``wanted``.

    ``scaled``: the noisy latents scaled for the model, ``[B, F, 4, h, w]`` (one video per branch) or
    ``[1, F, 4, h, w]`` (shared). ``timestep``: scalar or ``[B]``. ``batch_branches``: one UNet call per window for
    all its branches (else one call per branch; same values up to rounding). ``on_window`` sees every window's
    evaluation (progress, interruption, recording). ``pose_scale`` multiplies the PoseNet features of the posed
    branches (0: PoseNet is not run); ``id_scale`` is the ID adapter's scale (this step's pose / identity terms).
    ``split``: this process's share of the (window, branch) units when several processes sample one video (two
    branches, uncond and cond); the result is reduced so that every process returns the full prediction.
    """
    nb = branches.count
    wanted = tuple(range(nb)) if wanted is None else tuple(wanted)
    if split is not None and split.active and nb != 2:
        raise ValueError(f"a work split divides the unconditional and conditional branches; got {nb} branches")
    rows = {b: r for r, b in enumerate(wanted)}
    h, w = scaled.shape[-2], scaled.shape[-1]
    dtype = next(unet.parameters()).dtype
    device = scaled.device
    scaled = scaled.to(dtype).expand(nb, -1, -1, -1, -1)
    t = torch.as_tensor(timestep, device=device).reshape(-1).expand(nb)
    ehs = branches.encoder_hidden_states.to(device, dtype)
    ids = branches.added_time_ids.to(device, dtype)
    ref = branches.reference_latents.to(device, dtype)
    # blended in float32 whatever the UNet precision
    blend = PredictionBlend(windows.index, windows.weights, windows.weight_sums, len(wanted), (LATENT_CHANNELS, h, w),
                            split)
    for wi, mine in work_units(windows.count, nb, split):
        sel = [b for b in mine if b in rows]
        if not sel:
            continue
        idx = windows.index[wi]
        n = idx.shape[0]
        noisy = _take(scaled, sel).index_select(1, idx)
        x = torch.cat([noisy, _take(ref, sel)[:, None].expand(len(sel), n, -1, -1, -1)], dim=2)
        posed = [branches.has_pose[b] for b in sel]
        pose = pose_for(wi) if pose_scale and any(posed) else None
        if pose is not None and pose_scale != 1.0:
            pose = pose * pose_scale
        t_sel, ehs_sel, ids_sel = _take(t, sel), _take(ehs, sel), _take(ids, sel)
        if batch_branches and len(sel) > 1:
            per_branch = None
            if pose is not None:
                per_branch = torch.stack([pose if p else torch.zeros_like(pose) for p in posed])
            out = unet(x, t_sel, ehs_sel, ids_sel, per_branch, id_scale=id_scale)
        else:
            out = torch.cat([unet(x[k : k + 1], t_sel[k : k + 1], ehs_sel[k : k + 1], ids_sel[k : k + 1],
                                  pose if posed[k] else None, id_scale=id_scale) for k in range(len(sel))])
        for k, b in enumerate(sel):
            blend.add(wi, rows[b], out[k])
        if on_window is not None:
            on_window(WindowCall(wi, tuple(sel), t_sel, x, out, ehs_sel, ids_sel, pose))
    return blend.result()
