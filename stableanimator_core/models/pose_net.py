"""PoseNet: encodes a skeleton image into features added to the UNet's first convolution output."""

from __future__ import annotations

import torch
from torch import nn


class PoseNet(nn.Module):
    """Four stages of conv3x3 + strided conv (x8 downsampling), 1x1 projection, learned scalar gain.

    Key names (``conv_layers.{0..14}``, ``final_proj``, ``scale``) match the released ``pose_net.pth``.
    Input ``[N, 3, H, W]`` in [-1, 1] (a 5-D ``[B, F, 3, H, W]`` batch is flattened); output ``[N, C, H/8, W/8]``.
    """

    def __init__(self, noise_latent_channels: int = 320):
        super().__init__()
        widths = [(3, 3, 16), (16, 16, 32), (32, 32, 64)]
        layers: list[nn.Module] = []
        for c_in, c_mid, c_out in widths:
            layers += [nn.Conv2d(c_in, c_mid, 3, padding=1), nn.SiLU(),
                       nn.Conv2d(c_mid, c_out, 4, stride=2, padding=1), nn.SiLU()]
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 128, 3, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(128, noise_latent_channels, 1)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:
            x = x.flatten(0, 1)
        return self.final_proj(self.conv_layers(x)) * self.scale
