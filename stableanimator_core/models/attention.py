"""Attention layers of the StableAnimator UNet: the spatio-temporal transformer with the ID adapter.

Key names follow the released ``unet.pth`` (diffusers' SVD layout plus
``attn2.processor.id_to_k/id_to_v``). Attention runs on ``torch.nn.functional.scaled_dot_product_attention``,
so no xformers is needed; its default scale ``1/sqrt(head_dim)`` is the official one.

Two exact shortcuts (they change no value, only skip work):

* A cross-attention whose context is a single token (the CLIP image embedding) has a softmax over one key,
  which is exactly 1, so its output is ``to_v(context)`` for every query. The temporal blocks' attn2 and the
  CLIP half of the spatial attn2 are computed that way, without ``to_q``/``to_k``.
* The official code strips the 4 face tokens before the temporal blocks; here the temporal blocks are simply
  given the CLIP token only.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names (``to_q``, ``to_k``, ``to_v``, ``to_out.0``)."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: Optional[int] = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(cross_attention_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(cross_attention_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def attend(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Attention of ``to_q(query)`` over ``to_k/to_v(context)``, heads merged, before ``to_out``."""
        q = _split_heads(self.to_q(query), self.heads)
        k = _split_heads(self.to_k(context), self.heads)
        v = _split_heads(self.to_v(context), self.heads)
        return _merge_heads(F.scaled_dot_product_attention(q, k, v))

    def forward(self, hidden_states: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        context = hidden_states if context is None else context
        return self.to_out[0](self.attend(hidden_states, context))

    def single_token_output(self, context_token: torch.Tensor) -> torch.Tensor:
        """Output for a one-token context ``[N, 1, D]``: ``to_out(to_v(context))``, shape ``[N, 1, C]``."""
        return self.to_out[0](self.to_v(context_token))


class IDAdapterProcessor(nn.Module):
    """Holds the ID adapter's projections; the module name ``processor`` gives the official key names."""

    def __init__(self, hidden_size: int, cross_attention_dim: int):
        super().__init__()
        self.id_to_k = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.id_to_v = nn.Linear(cross_attention_dim, hidden_size, bias=False)


class IDCrossAttention(Attention):
    """Spatial cross-attention with StableAnimator's distribution-aware ID adapter.

    ``A`` = attention to the CLIP token, ``I`` = attention to the face tokens through ``id_to_k/id_to_v``;
    ``I`` is standardised per sample over all tokens and channels (unbiased std, as ``torch.std``) and given
    the mean and std of ``A``, then ``to_out(A + I')``.
    """

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: int, num_id_tokens: int = 4):
        super().__init__(query_dim, heads, dim_head, cross_attention_dim)
        self.num_id_tokens = num_id_tokens
        self.processor = IDAdapterProcessor(heads * dim_head, cross_attention_dim)

    def forward(self, hidden_states: torch.Tensor, context: Optional[torch.Tensor] = None,
                id_scale: float = 1.0) -> torch.Tensor:
        """``id_scale`` is the official processor's ``scale`` (1.0): ``to_out(A + id_scale * I')``. At 0 the ID
        branch is not computed at all."""
        assert context is not None, "the ID cross-attention needs a context"
        context = context.to(hidden_states.dtype)
        n_clip = context.shape[1] - self.num_id_tokens
        clip_ctx, id_ctx = context[:, :n_clip], context[:, n_clip:]
        n, length, _ = hidden_states.shape

        q = None
        # The statistics are computed in float32 whatever the working dtype: a sum of squares over
        # tokens x channels leaves the fp16 range at the trained sizes (the official torch.std accumulates in
        # float32 internally; a hand-written fp16 sum does not).
        if n_clip == 1:
            clip_vec = self.to_v(clip_ctx)  # [N, 1, C]: every query gets exactly this
            channels = clip_vec.shape[-1]
            clip32 = clip_vec.float()
            mean_a = clip32.mean(dim=(1, 2), keepdim=True)
            # std over the (length x channels) broadcast tensor, unbiased like torch.std on the full tensor
            sq = (clip32 - mean_a).square().sum(dim=(1, 2), keepdim=True) * length
            std_a = (sq / (length * channels - 1)).sqrt()
            clip_out = clip_vec
        else:
            q = _split_heads(self.to_q(hidden_states), self.heads)
            k = _split_heads(self.to_k(clip_ctx), self.heads)
            v = _split_heads(self.to_v(clip_ctx), self.heads)
            clip_out = _merge_heads(F.scaled_dot_product_attention(q, k, v))
            std_a, mean_a = torch.std_mean(clip_out.float(), dim=(1, 2), keepdim=True)

        if id_scale == 0:
            # identity off: A alone (broadcast over the queries when A came from the one-token shortcut)
            return self.to_out[0](clip_out).expand(n, length, -1)
        if q is None:
            q = _split_heads(self.to_q(hidden_states), self.heads)
        id_aligned = self.id_term(q, id_ctx, mean_a, std_a)
        if id_scale != 1.0:
            id_aligned = id_aligned * id_scale
        return self.to_out[0](clip_out + id_aligned)

    def id_term(self, q: torch.Tensor, id_ctx: torch.Tensor, mean_a: torch.Tensor,
                std_a: torch.Tensor) -> torch.Tensor:
        """The ID adapter's output ``I'``: attention to the face tokens, moved to the moments of ``A``."""
        id_k = _split_heads(self.processor.id_to_k(id_ctx), self.heads)
        id_v = _split_heads(self.processor.id_to_v(id_ctx), self.heads)
        id_out = _merge_heads(F.scaled_dot_product_attention(q, id_k, id_v))
        std_i, mean_i = torch.std_mean(id_out.float(), dim=(1, 2), keepdim=True)  # fp32, see forward
        dtype = id_out.dtype
        return (id_out - mean_i.to(dtype)) * (std_a / (std_i + 1e-5)).to(dtype) + mean_a.to(dtype)


class FeedForward(nn.Module):
    """GEGLU feed-forward (``net.0.proj`` -> gate -> ``net.2``), 4x inner width, exact GELU."""

    def __init__(self, dim: int, dim_out: Optional[int] = None, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([_GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim_out or dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class _GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class SpatialTransformerBlock(nn.Module):
    """Self-attention, ID cross-attention, feed-forward; pre-LayerNorm residuals (diffusers BasicTransformerBlock)."""

    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int, num_id_tokens: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = IDCrossAttention(dim, heads, dim_head, cross_attention_dim, num_id_tokens)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, id_scale: float = 1.0) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context, id_scale) + x
        return self.ff(self.norm3(x)) + x


class TemporalTransformerBlock(nn.Module):
    """Attention across frames at each spatial position (diffusers TemporalBasicTransformerBlock).

    Its cross-attention context is the first frame's CLIP token only, a single token, so attn2's output is
    a per-sample constant (see module docstring).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim)
        self.ff_in = FeedForward(dim, dim_out=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, cross_attention_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, num_frames: int, clip_token: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B*F, L, C]``; ``clip_token``: ``[B, 1, D]`` (first frame's CLIP embedding per sample)."""
        bf, length, channels = x.shape
        batch = bf // num_frames
        # [B*F, L, C] -> [B*L, F, C]: sequences run over frames
        x = x.view(batch, num_frames, length, channels).permute(0, 2, 1, 3).reshape(batch * length, num_frames, channels)
        x = self.ff_in(self.norm_in(x)) + x
        x = self.attn1(self.norm1(x)) + x
        # attn2 attends to one token: the same vector for every frame and position of a sample.
        # norm2 is still part of the official graph but cannot change a one-key softmax, so it is skipped.
        cross = self.attn2.single_token_output(clip_token)  # [B, 1, C]
        x = (x.view(batch, length, num_frames, channels) + cross[:, :, None, :]).view(batch * length, num_frames, channels)
        x = self.ff(self.norm3(x)) + x
        return x.view(batch, length, num_frames, channels).permute(0, 2, 1, 3).reshape(bf, length, channels)


class TransformerSpatioTemporal(nn.Module):
    """GroupNorm -> proj_in -> (spatial block, frame-position embedding, temporal block, alpha blend) -> proj_out."""

    def __init__(self, heads: int, dim_head: int, in_channels: int, cross_attention_dim: int, num_id_tokens: int = 4,
                 depth: int = 1):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [SpatialTransformerBlock(inner, heads, dim_head, cross_attention_dim, num_id_tokens) for _ in range(depth)]
        )
        self.temporal_transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(inner, heads, dim_head, cross_attention_dim) for _ in range(depth)]
        )
        from .embeddings import TimestepEmbedding

        self.time_pos_embed = TimestepEmbedding(in_channels, in_channels * 4, out_dim=in_channels)
        self.time_mixer = AlphaBlender()
        self.proj_out = nn.Linear(inner, in_channels)
        self.in_channels = in_channels

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, clip_token: torch.Tensor, num_frames: int,
        id_scale: float = 1.0,
    ) -> torch.Tensor:
        """``x`` ``[B*F, C, H, W]``; ``context`` ``[B*F, T, D]`` (CLIP + face tokens); ``clip_token`` ``[B, 1, D]``."""
        from .embeddings import sinusoidal_embedding

        bf, channels, height, width = x.shape
        residual = x
        h = self.norm(x).permute(0, 2, 3, 1).reshape(bf, height * width, channels)
        h = self.proj_in(h)

        frame_index = torch.arange(num_frames, device=x.device).repeat(bf // num_frames)
        frame_emb = self.time_pos_embed(sinusoidal_embedding(frame_index, self.in_channels).to(h.dtype))[:, None, :]

        for block, temporal_block in zip(self.transformer_blocks, self.temporal_transformer_blocks):
            h = block(h, context, id_scale)
            h_mix = temporal_block(h + frame_emb, num_frames, clip_token)
            h = self.time_mixer(h, h_mix)

        h = self.proj_out(h)
        return h.reshape(bf, height, width, channels).permute(0, 3, 1, 2) + residual


class AlphaBlender(nn.Module):
    """``sigmoid(m)*spatial + (1-sigmoid(m))*temporal``; the UNet always runs with video frames (no image-only mode)."""

    def __init__(self, initial: float = 0.5):
        super().__init__()
        self.mix_factor = nn.Parameter(torch.tensor([initial]))

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor).to(spatial.dtype)
        return alpha * spatial + (1.0 - alpha) * temporal
