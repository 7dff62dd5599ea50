"""FusionFaceId: ArcFace identity embedding + CLIP image embedding -> face tokens for the ID adapter."""

from __future__ import annotations

import math

import torch
from torch import nn


class PerceiverAttention(nn.Module):
    """Latent queries attend to ``[image features; latents]`` (IP-Adapter Plus style, no biases)."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        self.dim_head, self.heads = dim_head, heads
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        features, latents = self.norm1(features), self.norm2(latents)
        b, n_lat, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([features, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        # The official code scales q and k by d^-1/4 each and runs the softmax in float32; here the scores are
        # formed in float32 too (in fp16 the product itself can overflow before the official upcast).
        s = 1.0 / math.sqrt(math.sqrt(self.dim_head))
        weight = torch.softmax((q.float() * s) @ (k.float() * s).transpose(-2, -1), dim=-1).to(q.dtype)
        out = (weight @ v).permute(0, 2, 1, 3).reshape(b, n_lat, -1)
        return self.to_out(out)


def _feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class FacePerceiver(nn.Module):
    def __init__(self, dim: int, depth: int, dim_head: int, heads: int, embedding_dim: int, output_dim: int):
        super().__init__()
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            [nn.ModuleList([PerceiverAttention(dim, dim_head, heads), _feed_forward(dim)]) for _ in range(depth)]
        )

    def forward(self, latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        features = self.proj_in(features)
        for attn, ff in self.layers:
            latents = attn(features, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


class FusionFaceId(nn.Module):
    """``(arcface [B, 512], clip [B, 1, Dc]) -> [B, num_tokens, D]``; key names match ``face_encoder.pth``."""

    def __init__(self, cross_attention_dim: int = 1024, id_embeddings_dim: int = 512,
                 clip_embeddings_dim: int = 1024, num_tokens: int = 4):
        super().__init__()
        self.cross_attention_dim, self.num_tokens = cross_attention_dim, num_tokens
        self.clip_embeddings_dim = clip_embeddings_dim  # the CLIP image embedding it fuses with (1024: ViT-H)
        self.proj = nn.Sequential(nn.Linear(id_embeddings_dim, id_embeddings_dim * 2), nn.GELU(),
                                  nn.Linear(id_embeddings_dim * 2, cross_attention_dim * num_tokens))
        self.norm = nn.LayerNorm(cross_attention_dim)
        self.fusion_model = FacePerceiver(dim=cross_attention_dim, depth=4, dim_head=64,
                                          heads=cross_attention_dim // 64, embedding_dim=clip_embeddings_dim,
                                          output_dim=cross_attention_dim)

    def forward(self, id_embeds: torch.Tensor, clip_embeds: torch.Tensor) -> torch.Tensor:
        x = self.proj(id_embeds).reshape(-1, self.num_tokens, self.cross_attention_dim)
        return self.fusion_model(self.norm(x), clip_embeds)
