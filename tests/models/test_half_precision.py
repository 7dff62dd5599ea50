"""fp16 at the trained sizes, layer by layer: each statistic or score that can leave the fp16 range is formed in
fp32 (the whole-job check at 512x512 and 576x1024 is tests/cli/test_animate_precision.py)."""

from __future__ import annotations

import torch


def test_id_adapter_statistics_hold_in_fp16_at_512():
    """The ID cross-attention alone, at 512x512's first-level token count (64x64 = 4096 tokens): its std over
    tokens x channels must not overflow in fp16 (the old sum of squares did once the CLIP branch's std > ~0.22)."""
    from stableanimator_core.models.attention import IDCrossAttention

    torch.manual_seed(0)
    layer = IDCrossAttention(query_dim=64, heads=2, dim_head=32, cross_attention_dim=128).eval()
    hidden = torch.randn(2, 4096, 64)
    context = torch.randn(2, 5, 128) * 4  # CLIP token + 4 face tokens; large enough for std_a ~ 1
    with torch.no_grad():
        ref = layer(hidden, context)
        half = layer.half()(hidden.half(), context.half()).float()
    assert torch.isfinite(half).all()
    assert float((half - ref).norm() / ref.norm()) < 3e-3


def test_norms_accumulate_beyond_the_fp16_range():
    """GroupNorm / LayerNorm over a 64x64x320 feature map with values ~300 (squares ~9e4 > fp16's 65504): torch's
    kernels accumulate in fp32, so the UNet may keep them in the working dtype."""
    x = torch.randn(2, 320, 64, 64) * 300
    gn = torch.nn.GroupNorm(32, 320, eps=1e-6)
    ln = torch.nn.LayerNorm(320)
    with torch.no_grad():
        for norm, inp in ((gn, x), (ln, x.permute(0, 2, 3, 1))):
            ref = norm(inp)
            half = norm.half()(inp.half()).float()
            assert torch.isfinite(half).all()
            assert float((half - ref).abs().max()) < 1e-2


def test_face_encoder_scores_form_in_fp32():
    """The perceiver's q.k scores above the fp16 range (large weights): the official code forms them in the
    working dtype and upcasts afterwards (inf -> NaN softmax); here they are formed in fp32."""
    from stableanimator_core.models.face_encoder import PerceiverAttention

    torch.manual_seed(0)
    attn = PerceiverAttention(dim=128, dim_head=64, heads=2).eval()
    with torch.no_grad():
        attn.to_q.weight.mul_(400)
        attn.to_kv.weight.mul_(400)
        features, latents = torch.randn(1, 1, 128), torch.randn(1, 4, 128)
        ref = attn(features, latents)
        half = attn.half()(features.half(), latents.half()).float()
    assert torch.isfinite(half).all()
    assert float((half - ref).norm() / ref.norm()) < 2e-2
