"""SVD's temporal VAE in two key layouts: ComfyUI's (the original Stability code, also ``first_stage_model.*`` in
``svd_xt.safetensors``) and diffusers' ``AutoencoderKLTemporalDecoder`` (the StableAnimator download's ``SVD/vae``).

The two hold the same tensors under other names, except that the attention projections are 1x1 convolutions in
ComfyUI's layout and linear layers in diffusers', and diffusers has a ``quant_conv`` the original model does not
(identity in the released diffusers weights). The renaming is one table of module pairs built from the block
counts, so both directions are dictionary look-ups over the same pairs.
"""

from __future__ import annotations

from typing import Iterator

import torch

from ..errors import CheckpointError

_RESNET = [("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("conv2", "conv2"),
           ("nin_shortcut", "conv_shortcut")]
# the decoder's resnets: spatial part, temporal part (time_stack) and the blend factor
_VIDEO_RESNET = ([(c, f"spatial_res_block.{d}") for c, d in _RESNET]
                 + [("time_stack.in_layers.0", "temporal_res_block.norm1"),
                    ("time_stack.in_layers.2", "temporal_res_block.conv1"),
                    ("time_stack.out_layers.0", "temporal_res_block.norm2"),
                    ("time_stack.out_layers.3", "temporal_res_block.conv2"),
                    ("mix_factor", "time_mixer.mix_factor")])
_ATTENTION = [("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")]
_LINEAR_IN_DIFFUSERS = (".to_q", ".to_k", ".to_v", ".to_out.0")


def _module_pairs(levels: int, blocks: int) -> Iterator[tuple[str, str]]:
    """(ComfyUI module, diffusers module) for every module with parameters."""
    yield "encoder.conv_in", "encoder.conv_in"
    for i in range(levels):
        for j in range(blocks):
            for c, d in _RESNET:
                yield f"encoder.down.{i}.block.{j}.{c}", f"encoder.down_blocks.{i}.resnets.{j}.{d}"
        if i < levels - 1:
            yield f"encoder.down.{i}.downsample.conv", f"encoder.down_blocks.{i}.downsamplers.0.conv"
    for side, resnet in (("encoder", _RESNET), ("decoder", _VIDEO_RESNET)):
        for n in (1, 2):
            for c, d in resnet:
                yield f"{side}.mid.block_{n}.{c}", f"{side}.mid_block.resnets.{n - 1}.{d}"
        for c, d in _ATTENTION:
            yield f"{side}.mid.attn_1.{c}", f"{side}.mid_block.attentions.0.{d}"
        yield f"{side}.norm_out", f"{side}.conv_norm_out"
        yield f"{side}.conv_out", f"{side}.conv_out"
    yield "decoder.conv_in", "decoder.conv_in"
    for i in range(levels):  # the original numbers the decoder's levels from the output, diffusers from the input
        up = levels - 1 - i
        for j in range(blocks + 1):
            for c, d in _VIDEO_RESNET:
                yield f"decoder.up.{up}.block.{j}.{c}", f"decoder.up_blocks.{i}.resnets.{j}.{d}"
        if up > 0:
            yield f"decoder.up.{up}.upsample.conv", f"decoder.up_blocks.{i}.upsamplers.0.conv"
    yield "decoder.conv_out.time_mix_conv", "decoder.time_conv_out"


def block_counts(sd: dict[str, torch.Tensor], down: str, block: str) -> tuple[int, int]:
    """(levels, resnets per encoder level) of a VAE state dict whose encoder levels are ``encoder.<down>.<i>`` and
    resnets ``...<block>.<j>`` (``down``/``block`` in ComfyUI's layout, ``down_blocks``/``resnets`` in diffusers')."""
    def count(prefix: str) -> int:
        n = 0
        while any(k.startswith(f"{prefix}{n}.") for k in sd):
            n += 1
        return n

    levels = count(f"encoder.{down}.")
    if levels == 0:
        raise CheckpointError("not an SVD temporal VAE state dict (no encoder blocks)")
    return levels, count(f"encoder.{down}.0.{block}.")


def is_comfy_layout(sd: dict[str, torch.Tensor]) -> bool:
    return "decoder.mid.block_1.mix_factor" in sd


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str = "first_stage_model.") -> dict[str, torch.Tensor]:
    """The VAE's keys of a whole ``svd_xt.safetensors`` (or the state dict itself if it has no such prefix)."""
    if not any(k.startswith(prefix) for k in sd):
        return sd
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _convert(sd: dict[str, torch.Tensor], pairs: list[tuple[str, str]], to_diffusers: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for comfy_name, diffusers_name in pairs:
        src, dst = (comfy_name, diffusers_name) if to_diffusers else (diffusers_name, comfy_name)
        for suffix in ("weight", "bias", ""):
            key = f"{src}.{suffix}" if suffix else src
            if key not in sd:
                continue
            value = sd[key]
            if suffix == "weight" and diffusers_name.endswith(_LINEAR_IN_DIFFUSERS):
                value = value.reshape(value.shape[0], -1) if to_diffusers else value.reshape(*value.shape, 1, 1)
            out[f"{dst}.{suffix}" if suffix else dst] = value
            used.add(key)
    left = sorted(set(sd) - used - {"quant_conv.weight", "quant_conv.bias"})
    if left:
        raise CheckpointError(f"the SVD VAE state dict has {len(left)} keys this layout does not know, e.g. "
                              f"{', '.join(left[:3])}: it is not SVD-xt's temporal VAE")
    return out


def comfy_to_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI / original keys -> ``AutoencoderKLTemporalDecoder`` keys (with the identity ``quant_conv``)."""
    levels, blocks = block_counts(sd, "down", "block")
    out = _convert(sd, list(_module_pairs(levels, blocks)), to_diffusers=True)
    z = out["encoder.conv_out.weight"].shape[0]  # 2 x latent channels (mean and log-variance)
    like = out["encoder.conv_out.weight"]
    out["quant_conv.weight"] = torch.eye(z, dtype=like.dtype).reshape(z, z, 1, 1)
    out["quant_conv.bias"] = torch.zeros(z, dtype=like.dtype)
    return out


def diffusers_to_comfy(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``AutoencoderKLTemporalDecoder`` keys -> ComfyUI / original keys. The original has no ``quant_conv``, so only
    an identity one converts."""
    weight, bias = sd.get("quant_conv.weight"), sd.get("quant_conv.bias")
    if weight is not None:
        z = weight.shape[0]
        identity = torch.eye(z, dtype=weight.dtype).reshape(z, z, 1, 1)
        if not torch.equal(weight, identity) or (bias is not None and bool(bias.abs().max() > 0)):
            raise CheckpointError("this diffusers VAE has a quant_conv that is not the identity; the original SVD "
                                  "layout cannot hold it")
    levels, blocks = block_counts(sd, "down_blocks", "resnets")
    return _convert(sd, list(_module_pairs(levels, blocks)), to_diffusers=False)
