"""The opt-in acceleration options: torch.compile with its eager fallback, fp8 weight storage, the automatic VAE
decode chunk, and their wiring into the loader and the decoder.

Compile equality on the tiny UNet is opt-in (``STABLEANIMATOR_SLOW_TESTS=1``): on the 2-core test machine
inductor needs about 4.5 minutes to compile it (the result then matches eager within 2e-6 relative), and even
the trace-only ``eager`` backend takes ~10 s, past this suite's time budget. The fast tests cover the fallback.
"""

from __future__ import annotations

import copy
import logging
import os

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from stableanimator_core.models import acceleration as acc
from stableanimator_core.pipeline.decode import decode_latents


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds OpenMP barrier waits
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- decode chunk


def test_decode_chunk_is_monotone_positive_and_capped():
    gib = 1 << 30
    frees = [0, 1, 2**20, 512 * 2**20] + [k * gib // 4 for k in range(1, 400)]
    for h, w in ((512, 512), (576, 1024), (1024, 576), (256, 256)):
        chunks = [acc.choose_decode_chunk_size(f, h, w) for f in frees]
        assert all(1 <= c <= acc.MAX_DECODE_CHUNK for c in chunks)
        assert chunks == sorted(chunks)  # more free memory never gives a smaller chunk
        assert chunks[0] == 1 and chunks[-1] == acc.MAX_DECODE_CHUNK
    assert acc.choose_decode_chunk_size(100 * gib, 512, 512, max_chunk=4) == 4


def test_decode_chunk_follows_the_memory_model():
    gib = 1 << 30
    per_frame = acc.decode_bytes_per_frame(512, 512)  # ~1.1 GiB per 512x512 frame in fp32
    assert 1.0 * gib < per_frame < 1.3 * gib
    # a 24 GiB card with ~20 GiB free decodes 512x512 in chunks of 14; 576x1024 (2.25x the pixels) in 6
    assert acc.choose_decode_chunk_size(20 * gib, 512, 512) == 14
    assert acc.choose_decode_chunk_size(20 * gib, 576, 1024) == 6
    # half-precision activations take half the memory: at least as large a chunk, about twice
    assert acc.choose_decode_chunk_size(8 * gib, 576, 1024, torch.float16) == 2 * acc.choose_decode_chunk_size(
        8 * gib, 576, 1024, torch.float32)
    # larger frames never get a larger chunk
    sizes = [(256, 256), (512, 512), (576, 1024), (1024, 1024)]
    chunks = [acc.choose_decode_chunk_size(12 * gib, h, w) for h, w in sizes]
    assert chunks == sorted(chunks, reverse=True)
    with pytest.raises(ValueError):
        acc.choose_decode_chunk_size(gib, 0, 512)


def test_free_memory_of_the_host_is_plausible():
    free = acc.free_memory_bytes("cpu")
    assert 64 << 20 < free < 1 << 50


def test_decode_chunk_zero_means_auto(tiny_models, parity):
    from safetensors.torch import load_file

    latents = load_file(str(parity / "A_basic_tiled" / "tensors.safetensors"))["final_latents"]  # 9 frames
    calls = []
    small = decode_latents(tiny_models.vae, latents, 0, on_chunk=lambda d, t: calls.append(t), free_memory=lambda: 0)
    assert calls[-1] == 9  # no free memory: one frame per chunk
    assert torch.equal(small, decode_latents(tiny_models.vae, latents, 1))
    calls.clear()
    big = decode_latents(tiny_models.vae, latents, 0, on_chunk=lambda d, t: calls.append(t),
                         free_memory=lambda: 1 << 40)
    assert calls == [1]  # plenty: all 9 frames in one chunk (never more than the video has)
    assert torch.equal(big, decode_latents(tiny_models.vae, latents, 9))
    with pytest.raises(ValueError):
        decode_latents(tiny_models.vae, latents, -1)


# ----------------------------------------------------------------------------- torch.compile


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no C++ compiler here")


def test_compile_failure_falls_back_to_eager(caplog):
    torch.manual_seed(0)
    model = _Small().eval()
    x = torch.randn(3, 8)
    eager = model(x)
    acc.compile_unet(model, backend=_failing_backend)
    assert acc.compile_status(model) == "compiled"  # lazily: nothing is compiled before the first call
    with caplog.at_level(logging.WARNING, logger=acc.__name__):
        out = model(x)
    assert torch.equal(out, eager)
    assert acc.compile_status(model) == "fallback"
    assert any("running it eagerly" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=acc.__name__):
        assert torch.equal(model(x), eager)
    assert not caplog.records  # the failure is reported once, then eager silently
    acc.uncompile_unet(model)
    assert acc.compile_status(model) == "eager" and torch.equal(model(x), eager)


def test_compile_with_unknown_backend_stays_eager(caplog):
    model = _Small().eval()
    with caplog.at_level(logging.WARNING, logger=acc.__name__):
        assert acc.compile_unet(model, backend="no-such-backend") is model
    assert acc.compile_status(model) == "eager"
    with pytest.raises(ValueError):
        acc.compile_unet(model, mode="fastest")


def test_compile_keeps_module_identity_and_state_dict():
    model = _Small()
    keys = list(model.state_dict())
    assert acc.compile_unet(model, backend="eager") is model
    assert list(model.state_dict()) == keys
    acc.compile_unet(model, backend="eager")  # idempotent
    assert acc.compile_status(model) == "compiled"


@pytest.mark.skipif(os.environ.get("STABLEANIMATOR_SLOW_TESTS") != "1",
                    reason="inductor takes ~4.5 min to compile the tiny UNet on 2 CPU cores")
def test_compiled_tiny_unet_matches_eager(tiny_models, parity):
    from safetensors.torch import load_file

    rec = load_file(str(parity / "A_basic_tiled" / "tensors.safetensors"))
    args = [rec["unet_call1_cond_" + k] for k in ("sample", "timestep", "encoder_hidden_states", "added_time_ids",
                                                  "pose_latents")]
    unet = copy.deepcopy(tiny_models.unet)
    with torch.no_grad():
        eager = unet(*args)
        acc.compile_unet(unet)
        out = unet(*args)
    assert acc.compile_status(unet) == "compiled"
    assert ((out - eager).abs().max() / eager.abs().max()).item() < 1e-4


# ----------------------------------------------------------------------------- fp8 weight storage


def test_fp8_storage_rounds_weights_only_and_keeps_compute_dtype(tiny_models):
    unet = copy.deepcopy(tiny_models.unet).to(torch.bfloat16)
    original = {n: p.detach().float().clone() for n, p in unet.named_parameters()}
    acc.store_weights_fp8(unet)
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert parametrize.is_parametrized(layer, "weight")
    assert layer.parametrizations.weight.original.dtype == torch.float8_e4m3fn
    assert layer.weight.dtype == torch.bfloat16  # what forward sees: the compute dtype
    # first and last convolutions stay full precision, so the sampler's dtype detection still sees bf16
    assert unet.conv_in.weight.dtype == unet.conv_out.weight.dtype == torch.bfloat16
    assert next(unet.parameters()).dtype == torch.bfloat16 and unet.dtype == torch.bfloat16
    # biases and norms untouched
    assert torch.equal(layer_bias := unet.conv_norm_out.weight.float(), original["conv_norm_out.weight"])
    assert layer_bias.dtype == torch.float32
    # e4m3 keeps 3 mantissa bits: a per-channel scaled weight is within 1/16 relative, or one subnormal step
    w0 = original["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    amax = w0.abs().amax(dim=1, keepdim=True)
    err = (layer.weight.float() - w0).abs()
    assert (err <= w0.abs() / 16 + amax / 448 * 2**-9 + w0.abs() / 128).all()  # + bf16 rounding of the result
    assert err.max() > 0  # it really was rounded


def test_fp8_storage_bytes_and_forward(tiny_models, parity):
    from safetensors.torch import load_file

    rec = load_file(str(parity / "A_basic_tiled" / "tensors.safetensors"))
    args = [rec["unet_call1_cond_" + k] for k in ("sample", "timestep", "encoder_hidden_states", "added_time_ids",
                                                  "pose_latents")]
    unet = copy.deepcopy(tiny_models.unet)
    linear_conv = sum(m.weight.numel() for n, m in unet.named_modules()
                      if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)) and n not in ("conv_in", "conv_out"))
    before = acc.weight_storage_bytes(unet)
    acc.store_weights_fp8(unet, torch.float8_e5m2)
    after = acc.weight_storage_bytes(unet)
    assert before - after == linear_conv * 3 - _scale_bytes(unet)  # 4 -> 1 byte per weight, plus the scales
    with torch.no_grad():
        out = unet(*args)
    ref = rec["unet_call1_cond_out"]
    rel = float((out - ref).norm() / ref.norm())
    assert torch.isfinite(out).all() and 1e-3 < rel < 0.5, rel  # e5m2: 2 mantissa bits; measured ~0.25


def _scale_bytes(module: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for n, b in module.named_buffers() if n.endswith(".scale"))


def test_fp8_storage_rejects_non_fp8_dtype():
    with pytest.raises(ValueError):
        acc.store_weights_fp8(_Small(), torch.bfloat16)


# ----------------------------------------------------------------------------- loader wiring


def test_unet_options_validate():
    with pytest.raises(ValueError):
        acc.UNetOptions(compile_mode="turbo")
    with pytest.raises(ValueError):
        acc.UNetOptions(weight_storage="int4")
    unet = _Small()
    assert acc.apply_unet_options(unet, None) is unet
    assert acc.apply_unet_options(unet, acc.UNetOptions()) is unet
    assert not parametrize.is_parametrized(unet.a) and acc.compile_status(unet) == "eager"


def test_loader_applies_unet_options(tiny_models_dir):
    from stableanimator_core.loading.layout import ModelLayout
    from stableanimator_core.loading.components import load_models

    layout = ModelLayout.from_models_dir(tiny_models_dir)
    options = acc.UNetOptions(weight_storage="fp8_e4m3fn", compile=True)
    models = load_models(layout, torch.float32, "cpu", unet_options=options)
    to_q = models.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert to_q.parametrizations.weight.original.dtype == torch.float8_e4m3fn
    assert acc.compile_status(models.unet) == "compiled"
    assert not parametrize.is_parametrized(models.pose_net.final_proj)  # only the UNet
