"""Overlapping frame windows for videos longer than the UNet's window (MimicMotion's tiling, as official).

Every window holds frame 0 plus ``tile_size - 1`` consecutive frames; windows advance by
``tile_size - overlap``; a last window is added so the final frame is covered. Predictions are blended with
a triangular weight per window position (frame 0 always sits at the smallest weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def effective_tile_size(num_frames: int, tile_size: int) -> int:
    """The official code crashes when there are fewer frames than the window; use one window over all frames."""
    if num_frames < 1:
        raise ValueError("at least one frame is needed")
    return min(tile_size, num_frames)


def window_indices(num_frames: int, tile_size: int, overlap: int) -> list[list[int]]:
    if tile_size < 1 or tile_size > num_frames:
        raise ValueError(f"tile_size must be in 1..{num_frames} (frames), got {tile_size}")
    if num_frames == 1:
        return [[0]]
    if tile_size < 2:
        raise ValueError("tile_size must be at least 2 when there is more than one frame")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"tile_overlap must be in 0..{tile_size - 1} for tile_size {tile_size}, got {overlap}")
    if overlap < 1 and num_frames > tile_size:
        # each window spends one slot on frame 0, so windows advancing by a full tile skip every tile-th frame
        # (the official code divides 0 by 0 there and the video turns to NaN)
        raise ValueError("tile_overlap must be at least 1 when the video is longer than one window")
    step = tile_size - overlap
    windows = [[0, *range(i + 1, min(i + tile_size, num_frames))] for i in range(0, num_frames - tile_size + 1, step)]
    if windows[-1][-1] < num_frames - 1:
        windows.append([0, *range(num_frames - tile_size + 1, num_frames)])
    return windows


def window_weights(tile_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    w = (torch.arange(tile_size, device=device) + 0.5) * 2.0 / tile_size
    return torch.minimum(w, 2 - w)


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one video: the tiling normalised once, for the sampler, the progress bar and the nodes."""

    num_frames: int
    tile_size: int  # effective: at most the frame count
    overlap: int  # effective: below the tile size
    windows: tuple[tuple[int, ...], ...]

    @property
    def count(self) -> int:
        return len(self.windows)


def plan_windows(num_frames: int, tile_size: int, tile_overlap: int) -> WindowPlan:
    """Windows for ``num_frames`` frames; a tile longer than the video becomes one window over all frames."""
    tile = effective_tile_size(num_frames, tile_size)
    overlap = min(tile_overlap, tile - 1)
    return WindowPlan(num_frames, tile, overlap, tuple(tuple(w) for w in window_indices(num_frames, tile, overlap)))
