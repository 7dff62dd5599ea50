"""``auto`` precision: bf16 only where it is native, with faked CUDA device properties (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from stableanimator_core.devices import has_native_bf16, resolve_dtype


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device of a given compute capability; ``is_bf16_supported`` says True as torch does on Turing."""
    def make(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return make


@pytest.mark.parametrize("capability, expected", [
    ((6, 1), torch.float16),  # Pascal (GTX 10xx, P40)
    ((7, 0), torch.float16),  # Volta (V100)
    ((7, 5), torch.float16),  # Turing (RTX 20xx, T4): bf16 only emulated
    ((8, 0), torch.bfloat16),  # A100
    ((8, 6), torch.bfloat16),  # RTX 30xx
    ((8, 9), torch.bfloat16),  # RTX 40xx, L4
    ((9, 0), torch.bfloat16),  # H100 / H200
    ((12, 0), torch.bfloat16),  # Blackwell consumer
])
def test_auto_on_cuda_follows_compute_capability(fake_gpu, capability, expected):
    fake_gpu(capability)
    assert resolve_dtype("auto", "cuda") == expected
    assert resolve_dtype("auto", torch.device("cuda", 0)) == expected
    assert has_native_bf16("cuda") == (expected == torch.bfloat16)


def test_auto_on_mps_and_cpu(fake_gpu):
    fake_gpu((9, 0))  # a GPU elsewhere does not change the choice for these devices
    assert resolve_dtype("auto", "mps") == torch.float16
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert not has_native_bf16("cpu")


def test_explicit_precisions_are_kept(fake_gpu):
    fake_gpu((7, 5))
    assert resolve_dtype("bf16", "cuda") == torch.bfloat16  # the user's explicit choice wins
    assert resolve_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_dtype("fp8", "cuda")
