"""The StableAnimator UNet: SVD-xt's spatio-temporal UNet plus pose input and the ID adapter.

Differences from diffusers' ``UNetSpatioTemporalConditionModel`` (all from the official code):

* PoseNet features are added to the ``conv_in`` output (``pose_latents``);
* every spatial cross-attention carries the distribution-aware ID adapter over the 4 face tokens;
* the temporal blocks see only the CLIP token (the face tokens are stripped).

The module and parameter names reproduce the released ``Animation/unet.pth`` exactly, so it loads with
``strict=True``. The forward takes a batch of samples (e.g. unconditional and conditional together), which
the official pipeline ran as two separate batch-1 calls; the results are the same per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .attention import TransformerSpatioTemporal
from .embeddings import TimestepEmbedding, sinusoidal_embedding
from .resnet import Downsample2D, SpatioTemporalResBlock, Upsample2D


@dataclass(frozen=True)
class UNetConfig:
    """The subset of SVD-xt's ``unet/config.json`` that defines the architecture."""

    in_channels: int = 8
    out_channels: int = 4
    block_out_channels: Sequence[int] = (320, 640, 1280, 1280)
    down_block_types: Sequence[str] = (
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    )
    up_block_types: Sequence[str] = (
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    )
    addition_time_embed_dim: int = 256
    projection_class_embeddings_input_dim: int = 768
    # each of these may be one value for every block or one per block, as in diffusers
    layers_per_block: int | Sequence[int] = 2
    cross_attention_dim: int | Sequence[int] = 1024
    transformer_layers_per_block: int | Sequence[int] = 1
    num_attention_heads: int | Sequence[int] = (5, 10, 20, 20)
    num_frames: int = 25
    sample_size: Optional[int] = 96
    num_id_tokens: int = 4

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "UNetConfig":
        """Build from a diffusers-style config dict, ignoring keys that do not affect the architecture."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in known}
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def per_block(self, name: str) -> list[int]:
        """A per-block setting as a list with one value per down block."""
        value = getattr(self, name)
        n = len(self.block_out_channels)
        values = [value] * n if isinstance(value, int) else list(value)
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values for {n} blocks")
        return values

    def validate(self) -> None:
        n = len(self.block_out_channels)
        if not (len(self.down_block_types) == len(self.up_block_types) == n):
            raise ValueError("block_out_channels and down/up_block_types must have equal lengths")
        for name in ("layers_per_block", "cross_attention_dim", "transformer_layers_per_block", "num_attention_heads"):
            self.per_block(name)
        for t in self.down_block_types:
            if t not in ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"):
                raise ValueError(f"unsupported down block {t}")
        for t in self.up_block_types:
            if t not in ("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"):
                raise ValueError(f"unsupported up block {t}")


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, temb: int, layers: int, eps: float, add_downsample: bool,
                 heads: Optional[int], cross_dim: int, num_id_tokens: int, depth: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList(
            [SpatioTemporalResBlock(in_ch if i == 0 else out_ch, out_ch, temb, eps) for i in range(layers)]
        )
        if heads is not None:
            self.attentions = nn.ModuleList(
                [TransformerSpatioTemporal(heads, out_ch // heads, out_ch, cross_dim, num_id_tokens, depth)
                 for _ in range(layers)]
            )
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if add_downsample else None

    def forward(self, x, temb_act, ctx, clip_token, num_frames, id_scale: float = 1.0):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb_act, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx, clip_token, num_frames, id_scale)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, prev_ch: int, out_ch: int, temb: int, layers: int, add_upsample: bool,
                 heads: Optional[int], cross_dim: int, num_id_tokens: int, depth: int = 1):
        super().__init__()
        resnets = []
        for i in range(layers):
            skip_ch = in_ch if i == layers - 1 else out_ch
            res_in = prev_ch if i == 0 else out_ch
            resnets.append(SpatioTemporalResBlock(res_in + skip_ch, out_ch, temb, eps=1e-6))
        self.resnets = nn.ModuleList(resnets)
        if heads is not None:
            self.attentions = nn.ModuleList(
                [TransformerSpatioTemporal(heads, out_ch // heads, out_ch, cross_dim, num_id_tokens, depth)
                 for _ in range(layers)]
            )
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_upsample else None

    def forward(self, x, skips, temb_act, ctx, clip_token, num_frames, id_scale: float = 1.0):
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = resnet(x, temb_act, num_frames)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx, clip_token, num_frames, id_scale)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, ch: int, temb: int, heads: int, cross_dim: int, num_id_tokens: int, depth: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([SpatioTemporalResBlock(ch, ch, temb, eps=1e-5) for _ in range(2)])
        self.attentions = nn.ModuleList([TransformerSpatioTemporal(heads, ch // heads, ch, cross_dim, num_id_tokens,
                                                                   depth)])

    def forward(self, x, temb_act, ctx, clip_token, num_frames, id_scale: float = 1.0):
        x = self.resnets[0](x, temb_act, num_frames)
        x = self.attentions[0](x, ctx, clip_token, num_frames, id_scale)
        return self.resnets[1](x, temb_act, num_frames)


class StableAnimatorUNet(nn.Module):
    """See the module docstring. ``forward`` returns the v-prediction ``[B, F, out_channels, h, w]``."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        config.validate()
        self.config = config
        ch = list(config.block_out_channels)
        heads = config.per_block("num_attention_heads")
        cross = config.per_block("cross_attention_dim")
        layers = config.per_block("layers_per_block")
        depth = config.per_block("transformer_layers_per_block")
        temb = ch[0] * 4
        ntok = config.num_id_tokens

        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.add_embedding = TimestepEmbedding(config.projection_class_embeddings_input_dim, temb)

        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i, kind in enumerate(config.down_block_types):
            inp, out = out, ch[i]
            cross_attn = kind.startswith("CrossAttn")
            self.down_blocks.append(
                DownBlock(inp, out, temb, layers[i], eps=1e-6 if cross_attn else 1e-5,
                          add_downsample=i < len(ch) - 1, heads=heads[i] if cross_attn else None,
                          cross_dim=cross[i], num_id_tokens=ntok, depth=depth[i])
            )
        self.mid_block = MidBlock(ch[-1], temb, heads[-1], cross[-1], ntok, depth[-1])

        rev_ch, rev_heads, rev_cross, rev_layers, rev_depth = ch[::-1], heads[::-1], cross[::-1], layers[::-1], depth[::-1]
        self.up_blocks = nn.ModuleList()
        out = rev_ch[0]
        for i, kind in enumerate(config.up_block_types):
            prev, out = out, rev_ch[i]
            inp = rev_ch[min(i + 1, len(ch) - 1)]
            cross_attn = kind.startswith("CrossAttn")
            self.up_blocks.append(
                UpBlock(inp, prev, out, temb, rev_layers[i] + 1, add_upsample=i < len(ch) - 1,
                        heads=rev_heads[i] if cross_attn else None, cross_dim=rev_cross[i], num_id_tokens=ntok,
                        depth=rev_depth[i])
            )
        self.conv_norm_out = nn.GroupNorm(32, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], config.out_channels, 3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        pose_latents: Optional[torch.Tensor] = None,
        id_scale: float = 1.0,
    ) -> torch.Tensor:
        """
        sample: ``[B, F, in_channels, h, w]`` (noisy latents scaled for the model, then the reference latents).
        timestep: scalar or ``[B]`` (SVD's continuous ``0.25*log(sigma)``).
        encoder_hidden_states: ``[B, 1 + num_id_tokens, D]`` (CLIP token, then the face tokens).
        added_time_ids: ``[B, 3]`` = ``[fps-1, motion_bucket_id, noise_aug_strength]``.
        pose_latents: PoseNet output, ``[F, C0, h, w]`` added to every sample or ``[B, F, C0, h, w]`` per sample.
        id_scale: weight of the ID adapter's output in every spatial cross-attention (official ``scale`` 1.0;
            0 skips the ID adapter).
        """
        batch, frames = sample.shape[:2]
        dtype = self.dtype
        t = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).reshape(-1).expand(batch)
        cfg = self.config
        emb = self.time_embedding(sinusoidal_embedding(t, cfg.block_out_channels[0]).to(dtype))
        add = sinusoidal_embedding(added_time_ids.reshape(-1), cfg.addition_time_embed_dim).reshape(batch, -1)
        emb = emb + self.add_embedding(add.to(dtype))
        temb_act = F.silu(emb).repeat_interleave(frames, dim=0)  # [B*F, temb]; every ResNet applies SiLU first

        encoder_hidden_states = encoder_hidden_states.to(dtype)
        ctx = encoder_hidden_states.repeat_interleave(frames, dim=0)  # [B*F, T, D]
        clip_token = encoder_hidden_states[:, : encoder_hidden_states.shape[1] - cfg.num_id_tokens]
        if clip_token.shape[1] != 1:
            raise ValueError("the temporal blocks expect exactly one CLIP token before the face tokens")

        x = self.conv_in(sample.flatten(0, 1).to(dtype))
        if pose_latents is not None:
            pose = pose_latents.to(dtype)
            if pose.ndim == 5:
                x = x + pose.flatten(0, 1)
            else:
                x = (x.view(batch, frames, *x.shape[1:]) + pose[None]).flatten(0, 1)

        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb_act, ctx, clip_token, frames, id_scale)
            skips.extend(block_skips)
        x = self.mid_block(x, temb_act, ctx, clip_token, frames, id_scale)
        for block in self.up_blocks:
            n = len(block.resnets)
            block_skips, skips = skips[-n:], skips[:-n]
            x = block(x, block_skips, temb_act, ctx, clip_token, frames, id_scale)

        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x.reshape(batch, frames, *x.shape[1:])
