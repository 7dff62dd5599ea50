"""IResNet face-recognition backbone (insightface ``arcface_torch`` layout).

StableAnimator's HJB face optimisation embeds decoded 112x112 face crops with ArcFace iresnet100
(``glintr100_torch.pth``, 512-d). The module and parameter names below are the ``arcface_torch`` ones, so the
released file loads with ``strict=True``: ``conv1, bn1, prelu, layer1..4.N.{bn1, conv1, bn2, prelu, conv2, bn3,
downsample.0/1}, bn2, fc, features``.

Stage widths are fixed (64, 128, 256, 512) as in arcface_torch; only the block counts and the embedding size vary
(``[3, 13, 30, 3]``/512 for glintr100, ``[1, 1, 1, 1]``/128 for the parity fixture's tiny model).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import InputError

IRESNET100_LAYERS = (3, 13, 30, 3)
FACE_INPUT_SIZE = 112
_STAGE_WIDTHS = (64, 128, 256, 512)
_BN_EPS = 1e-5


class IBasicBlock(nn.Module):
    """Pre-activation-style basic block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """ArcFace IResNet: ``[N, 3, 112, 112]`` RGB in [-1, 1] -> ``[N, num_features]`` (not L2-normalised)."""

    def __init__(self, layers: Sequence[int] = IRESNET100_LAYERS, num_features: int = 512):
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"IResNet needs four positive block counts, got {list(layers)}")
        self.layers_config = tuple(int(n) for n in layers)
        self.num_features = int(num_features)
        self.conv1 = nn.Conv2d(3, _STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(_STAGE_WIDTHS[0], eps=_BN_EPS)
        self.prelu = nn.PReLU(_STAGE_WIDTHS[0])
        inplanes = _STAGE_WIDTHS[0]
        for stage, (planes, blocks) in enumerate(zip(_STAGE_WIDTHS, self.layers_config), start=1):
            # every stage halves the resolution, so every first block has a projection shortcut
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes, eps=_BN_EPS)
            )
            stage_blocks = [IBasicBlock(inplanes, planes, stride=2, downsample=downsample)]
            stage_blocks += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{stage}", nn.Sequential(*stage_blocks))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(_STAGE_WIDTHS[-1], eps=_BN_EPS)
        # 112 / 2^4 = 7: the final feature map is 7x7, flattened into the embedding layer
        self.fc = nn.Linear(_STAGE_WIDTHS[-1] * 7 * 7, self.num_features)
        self.features = nn.BatchNorm1d(self.num_features, eps=_BN_EPS)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "IResNet":
        """Build from a config such as the parity fixture's ``configs.json["face_embedding_extractor"]``."""
        block = config.get("block", "IBasicBlock")
        if block != "IBasicBlock":
            raise ValueError(f"only IBasicBlock IResNets are supported, got block={block!r}")
        return cls(layers=config.get("layers", IRESNET100_LAYERS), num_features=config.get("num_features", 512))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, FACE_INPUT_SIZE, FACE_INPUT_SIZE):
            raise InputError(f"the face network expects [N, 3, 112, 112] face crops, got {tuple(x.shape)}")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        # arcface_torch has Dropout(p=0) here, a no-op that holds no weights
        return self.features(self.fc(x))


def iresnet100(num_features: int = 512) -> IResNet:
    """The glintr100 architecture (ArcFace R100, 512-d)."""
    return IResNet(IRESNET100_LAYERS, num_features)
