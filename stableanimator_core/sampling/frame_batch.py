"""The StableAnimator UNet + PoseNet as a denoiser over a flat batch of frames, the layout host samplers use
for video models (ComfyUI's SVD: ``[branches * frames, C, h, w]``, every branch a whole video).

Each call splits the batch into branches, runs :func:`windowed_unet.windowed_prediction` (the official windows)
and returns the v-prediction in the same flat layout. Nothing here knows about a particular host: the host maps its
conditioning onto the keyword arguments of :meth:`FrameBatchDenoiser.forward`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ..pipeline.conditioning import skeleton_pixels
from ..pipeline.frame_store import PackedFrames
from .windowed_unet import Branches, DeviceWindows, WindowCall, windowed_prediction
from .windows import effective_tile_size, window_indices


@dataclass(eq=False)
class PoseFrames:
    """Skeleton frames ``[F, 3, H, W]`` (CPU; packed uint8 as the conditioning stores them, or [-1, 1] floats).
    Compared by identity, so the positive and negative conditioning of one video share it (and the host can batch
    them together)."""

    frames: PackedFrames | torch.Tensor

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def pixels(self, index: slice) -> torch.Tensor:
        """PoseNet input ``[n, 3, H, W]`` float32 in [-1, 1]."""
        return skeleton_pixels(self.frames, index)


@dataclass(frozen=True)
class WindowSettings:
    tile_size: int = 16
    tile_overlap: int = 4

    def windows(self, num_frames: int) -> list[list[int]]:
        tile = effective_tile_size(num_frames, self.tile_size)
        return window_indices(num_frames, tile, min(self.tile_overlap, tile - 1))


class FrameBatchDenoiser(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module, pose_net: torch.nn.Module, batch_branches: bool = True,
                 pose_chunk: int = 16):
        super().__init__()
        self.unet = unet
        self.pose_net = pose_net
        self.batch_branches = batch_branches
        self.pose_chunk = pose_chunk
        self.on_window: Optional[Callable[[], None]] = None  # progress / interruption, set by the host
        self.window_calls = 0  # windows run through the UNet since creation (caching patches lower it)
        self._pose_cache: Optional[tuple] = None
        self._windows_cache: Optional[tuple] = None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def clear_cache(self) -> None:
        """Drop the cached PoseNet features and window tensors (they live on the compute device between steps)."""
        self._pose_cache = None
        self._windows_cache = None

    def device_windows(self, windows: WindowSettings, num_frames: int, device: torch.device) -> DeviceWindows:
        """The window plan as device tensors, built on the first evaluation of a video and reused."""
        key = (windows, num_frames, device)
        if self._windows_cache is None or self._windows_cache[0] != key:
            self._windows_cache = (key, DeviceWindows(windows.windows(num_frames), device))
        return self._windows_cache[1]

    # not traced by torch.compile (core TorchCompileModel compiles the diffusion model): it unpacks the stored
    # skeletons on the host, once per video
    @torch.compiler.disable
    def pose_features(self, pose: PoseFrames, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """PoseNet of every frame, computed once per video and reused for every step and window."""
        cached = self._pose_cache
        if cached is not None and cached[0]() is pose and cached[1] == (device, dtype):
            return cached[2]
        with torch.no_grad():
            feats = torch.cat([self.pose_net(pose.pixels(slice(i, i + self.pose_chunk)).to(device, dtype))
                               for i in range(0, pose.num_frames, self.pose_chunk)])
        self._pose_cache = (weakref.ref(pose), (device, dtype), feats)
        return feats

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                reference_latents: torch.Tensor, added_time_ids: torch.Tensor, pose: PoseFrames,
                pose_enabled: torch.Tensor | Sequence[float], windows: WindowSettings, num_video_frames: int,
                pose_scale: float = 1.0, id_scale: float = 1.0) -> torch.Tensor:
        """
        x: model input ``[B*F, 4, h, w]`` (noisy latents already divided by sqrt(sigma^2 + 1));
        timesteps ``[B*F]`` (0.25 log sigma); context ``[B*F, 1 + tokens, D]``; reference_latents ``[B*F, 4, h, w]``;
        added_time_ids ``[B*F, 3]``; pose_enabled ``[B*F]`` values (1: PoseNet features added, 0: none; a tensor or a
        host sequence);
        pose_scale / id_scale: this step's pose and identity terms (``sampling.controls``; 0 = not computed).
        Returns the v-prediction ``[B*F, 4, h, w]`` (float32).
        """
        frames = int(num_video_frames)
        if x.shape[0] % frames:
            raise ValueError(f"the batch ({x.shape[0]}) is not a whole number of {frames}-frame videos; "
                             "StableAnimator windows the frames itself (do not split the video into chunks before it)")
        if pose.num_frames != frames:
            raise ValueError(f"{pose.num_frames} skeleton frames for a {frames}-frame latent")
        nb = x.shape[0] // frames

        def first(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(nb, frames, *t.shape[1:])[:, 0]

        # a host sequence from ComfyUI (no device sync), or a tensor from other hosts
        flags = pose_enabled.tolist() if isinstance(pose_enabled, torch.Tensor) else list(pose_enabled)
        enabled = [bool(flags[b * frames] > 0.5) for b in range(nb)]
        branches = Branches(first(context), first(added_time_ids), first(reference_latents), has_pose=enabled)
        dtype = self.dtype
        feats = self.pose_features(pose, x.device, dtype) if pose_scale and any(enabled) else None

        plan = self.device_windows(windows, frames, x.device)

        def pose_for(window: int) -> torch.Tensor:
            return feats[plan.index[window]]

        def on_window(call: WindowCall) -> None:
            self.window_calls += 1
            if self.on_window is not None:
                self.on_window()

        t = first(timesteps)
        scaled = x.reshape(nb, frames, *x.shape[1:])
        out = windowed_prediction(self.unet, scaled, t, branches, pose_for, plan, self.batch_branches, on_window,
                                  pose_scale=pose_scale, id_scale=id_scale)
        return out.reshape(nb * frames, *out.shape[2:])
