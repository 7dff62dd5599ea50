"""Per-frame pictures kept for a whole video in little memory: uint8 frames, each zlib-compressed.

Skeleton frames are mostly black, so they compress ~20-50x losslessly; a 10-minute video's skeletons at the
generation size then take a few hundred MB instead of many GB (uint8 [3, H, W] per frame) or 4x that in
float32. Decompressing a window's frames costs well under a millisecond per frame, next to a UNet call.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Optional, Sequence

import numpy as np
import torch


class PackedFrames:
    """``[F, C, H, W]`` uint8 frames stored compressed; indexing returns a uint8 tensor."""

    def __init__(self, channels: int, height: int, width: int, level: int = 1) -> None:
        self.frame_shape = (int(channels), int(height), int(width))
        self.level = level
        self._blobs: list[bytes] = []

    @classmethod
    def from_frames(cls, frames: Iterable[np.ndarray | torch.Tensor], channels: int, height: int,
                    width: int) -> "PackedFrames":
        store = cls(channels, height, width)
        for f in frames:
            store.append(f)
        return store

    def append(self, frame: np.ndarray | torch.Tensor) -> None:
        a = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if a.dtype != np.uint8 or a.shape != self.frame_shape:
            raise ValueError(f"expected a uint8 frame of shape {self.frame_shape}, got {a.dtype} {a.shape}")
        self._blobs.append(zlib.compress(np.ascontiguousarray(a).tobytes(), self.level))

    def __len__(self) -> int:
        return len(self._blobs)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self._blobs), *self.frame_shape)

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self._blobs)

    def frame(self, i: int) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self._blobs[i]), dtype=np.uint8).reshape(self.frame_shape)

    def __getitem__(self, index: int | slice | Sequence[int]) -> torch.Tensor:
        if isinstance(index, int):
            return torch.from_numpy(self.frame(index).copy())
        indices = range(len(self))[index] if isinstance(index, slice) else [int(i) for i in index]
        out = np.empty((len(indices), *self.frame_shape), dtype=np.uint8)
        for k, i in enumerate(indices):
            out[k] = self.frame(i)
        return torch.from_numpy(out)

    def to_tensor(self, limit: Optional[int] = None) -> torch.Tensor:
        """All frames as one uint8 tensor (for tests and small videos)."""
        return self[slice(0, limit)]
