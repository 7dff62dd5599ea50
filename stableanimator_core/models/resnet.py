"""Residual blocks of the SVD UNet: spatial ResNet, temporal ResNet (3x1x1 convs) and their learned blend."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .attention import AlphaBlender


class ResnetBlock2D(nn.Module):
    """GroupNorm-SiLU-conv twice with the time embedding added in between (diffusers ResnetBlock2D, defaults)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(32, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor) -> torch.Tensor:
        """``temb_act`` is ``silu(temb)``, shared by every block, ``[N, temb_channels]``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class TemporalResnetBlock(nn.Module):
    """The same block over time: Conv3d with kernel (3,1,1) on ``[B, C, F, H, W]``."""

    def __init__(self, channels: int, temb_channels: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, channels, eps=eps)
        self.conv1 = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        self.time_emb_proj = nn.Linear(temb_channels, channels)
        self.norm2 = nn.GroupNorm(32, channels, eps=eps)
        self.conv2 = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, F, H, W]``; ``temb_act`` ``[B, F, temb_channels]`` (already SiLU'd)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act).permute(0, 2, 1)[:, :, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class SpatioTemporalResBlock(nn.Module):
    """Spatial ResNet per frame, then temporal ResNet across frames, blended by a learned alpha."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, eps: float):
        super().__init__()
        self.spatial_res_block = ResnetBlock2D(in_channels, out_channels, temb_channels, eps)
        self.temporal_res_block = TemporalResnetBlock(out_channels, temb_channels, eps)
        self.time_mixer = AlphaBlender()

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.spatial_res_block(x, temb_act)
        bf, c, h, w = x.shape
        batch = bf // num_frames
        video = x.view(batch, num_frames, c, h, w).permute(0, 2, 1, 3, 4)
        mixed = self.temporal_res_block(video, temb_act.view(batch, num_frames, -1))
        out = self.time_mixer(video, mixed)
        return out.permute(0, 2, 1, 3, 4).reshape(bf, c, h, w)


class Downsample2D(nn.Module):
    """Stride-2 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest x2 (or to an explicit size when the skip tensor is odd-sized) then 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)
