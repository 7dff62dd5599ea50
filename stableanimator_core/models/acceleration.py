"""Opt-in speed and memory options for the UNet and the VAE decode; every default keeps the exact path.

* :func:`compile_unet` - ``torch.compile`` of the UNet's forward. Compilation happens on the first call; if it
  fails there (no C++ compiler / Triton, an unsupported op, a backend error) the failure is logged once and the
  UNet keeps running eagerly, so a missing toolchain never stops a generation.
* :func:`store_weights_fp8` - Linear/Conv weights kept in float8 with a per-output-channel scale and upcast to
  the compute dtype when a layer runs. Halves (bf16/fp16) or quarters (fp32) the weight memory; the maths still
  runs in the compute dtype, so it is a storage format, not fp8 compute. It rounds the weights, so it is an
  approximate option (see ``tests/models/test_precision.py`` for its measured deviation).
* :func:`choose_decode_chunk_size` - the largest VAE decode chunk that fits in the free memory (the user's
  ``decode_chunk_size=0``). The temporal decoder mixes frames inside a chunk, so "auto" trades exact
  reproducibility across machines for memory; the parity default stays the official 4.

Nothing here imports ComfyUI; the nodes pass ComfyUI's free-memory figure in where they have one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

log = logging.getLogger(__name__)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
WEIGHT_STORAGES = ("default", "fp8_e4m3fn", "fp8_e5m2")

# ----------------------------------------------------------------------------- options bundle


@dataclass(frozen=True)
class UNetOptions:
    """What the loader applies to the UNet after loading it. The defaults change nothing."""

    compile: bool = False
    compile_mode: str = "default"
    weight_storage: str = "default"  # "fp8_e4m3fn" / "fp8_e5m2": weights stored in fp8 (approximate)

    def __post_init__(self) -> None:
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if self.weight_storage not in WEIGHT_STORAGES:
            raise ValueError(f"weight_storage must be one of {WEIGHT_STORAGES}, got {self.weight_storage!r}")


def apply_unet_options(unet: nn.Module, options: Optional[UNetOptions]) -> nn.Module:
    """fp8 storage first (compile must see the final module), then compile."""
    if options is None:
        return unet
    if options.weight_storage != "default":
        store_weights_fp8(unet, getattr(torch, options.weight_storage.replace("fp8", "float8")))
    if options.compile:
        unet = compile_unet(unet, mode=options.compile_mode)
    return unet


# ----------------------------------------------------------------------------- torch.compile


class _CompiledForward:
    """The module's forward: the compiled one until it fails once, the eager one from then on."""

    def __init__(self, eager: Callable, compiled: Callable, name: str):
        self.eager = eager
        self.compiled = compiled
        self.name = name
        self.failed: Optional[BaseException] = None

    def __call__(self, *args, **kwargs):
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except torch.OutOfMemoryError:
                raise  # running eagerly needs no less memory; let the caller's OOM handling see it
            except Exception as exc:  # noqa: BLE001 - any compile failure must fall back, not abort a generation
                self.failed = exc
                log.warning("torch.compile of %s failed (%s: %s); running it eagerly from now on",
                            self.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return self.eager(*args, **kwargs)


def compile_unet(unet: nn.Module, mode: str = "default", backend: str = "inductor",
                 dynamic: Optional[bool] = None, fullgraph: bool = False) -> nn.Module:
    """Compile ``unet.forward`` in place (lazily, on the first call) with an eager fallback; returns ``unet``.

    The module object, its parameters and ``state_dict`` stay the same, so offloading and the sampler's dtype
    detection keep working. Compile warm-up (minutes for the full UNet) happens on the first call; new shapes
    (another resolution or window length) recompile.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode must be one of {COMPILE_MODES}, got {mode!r}")
    if isinstance(unet.__dict__.get("forward"), _CompiledForward):
        return unet  # already compiled
    eager = unet.forward
    try:
        compiled = torch.compile(eager, mode=None if mode == "default" else mode, backend=backend,
                                 dynamic=dynamic, fullgraph=fullgraph)
    except Exception as exc:  # noqa: BLE001 - e.g. an unknown backend, or dynamo unsupported on this Python
        log.warning("torch.compile is unavailable (%s: %s); the UNet runs eagerly", type(exc).__name__, exc)
        return unet
    unet.forward = _CompiledForward(eager, compiled, type(unet).__name__)
    return unet


def compile_status(unet: nn.Module) -> str:
    """``"eager"``, ``"compiled"`` or ``"fallback"`` (compiled, but the compilation failed)."""
    fwd = unet.__dict__.get("forward")
    if not isinstance(fwd, _CompiledForward):
        return "eager"
    return "fallback" if fwd.failed is not None else "compiled"


def uncompile_unet(unet: nn.Module) -> nn.Module:
    if isinstance(unet.__dict__.get("forward"), _CompiledForward):
        del unet.forward
    return unet


# ----------------------------------------------------------------------------- fp8 weight storage


class _Fp8Upcast(nn.Module):
    """Parametrization: ``weight = fp8_weight.to(dtype) * scale`` (scale per output channel)."""

    def __init__(self, scale: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("scale", scale)
        self.dtype = dtype

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.to(self.dtype) * self.scale.to(self.dtype)


def fp8_storage_available() -> bool:
    return hasattr(torch, "float8_e4m3fn") and hasattr(torch, "float8_e5m2")


def _quantize(weight: torch.Tensor, fp8: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel absmax scaling into the fp8 range (a plain cast would flush the many small weights
    of a 1024-wide layer, |w| ~ 0.03, into fp8's subnormals and lose most of their bits)."""
    w = weight.detach().float()
    shape = (-1,) + (1,) * (w.ndim - 1)
    amax = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
    scale = (amax / torch.finfo(fp8).max).reshape(shape)
    return (w / scale).to(fp8), scale


def store_weights_fp8(module: nn.Module, dtype: torch.dtype = torch.float8_e4m3fn,
                      skip: Iterable[str] = ("conv_in", "conv_out")) -> nn.Module:
    """Keep the weights of every ``nn.Linear`` / ``nn.Conv*`` of ``module`` in ``dtype`` (fp8), in place.

    Each layer computes with ``weight = fp8 * scale`` cast to the weight's original dtype (the compute dtype);
    biases, norms and embeddings are untouched. Layers whose qualified name is in ``skip`` keep full precision:
    by default the UNet's first and last convolutions (tiny, and the most precision-sensitive; it also keeps
    ``unet.dtype`` and the first parameter in the compute dtype). Apply it after the final ``.to(dtype)``: a
    later ``.to(dtype)`` would upcast the stored weights again (still correct, no longer small).
    """
    if not fp8_storage_available():
        raise RuntimeError(f"this PyTorch ({torch.__version__}) has no float8 dtypes")
    if dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        raise ValueError(f"fp8 storage dtype must be float8_e4m3fn or float8_e5m2, got {dtype}")
    skip = set(skip)
    for name, layer in list(module.named_modules()):
        if name in skip or not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        if parametrize.is_parametrized(layer, "weight"):
            continue  # already stored in fp8
        weight = layer.weight
        if not weight.dtype.is_floating_point or weight.dtype.itemsize <= 1:
            continue
        stored, scale = _quantize(weight, dtype)
        compute = weight.dtype
        # replace the parameter by its fp8 version first, so the parametrization keeps it as-is (no right_inverse)
        del layer._parameters["weight"]
        layer.weight = nn.Parameter(stored.to(weight.device), requires_grad=False)
        parametrize.register_parametrization(layer, "weight", _Fp8Upcast(scale.to(weight.device), compute),
                                             unsafe=True)
    return module


def weight_storage_bytes(module: nn.Module) -> int:
    """Bytes held by the module's parameters and buffers (what fp8 storage reduces)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


# ----------------------------------------------------------------------------- VAE decode chunk

# Peak live activation bytes of SVD's temporal VAE decoder per decoded frame and output pixel, in float32.
# Measured with benchmarks/measure_decode_memory.py (full-size SVD-xt decoder, every tensor storage the decode
# allocates tracked until freed): 4128-4352 B at 128x128 and 256x256, 1-4 frames per chunk; it is linear in
# frames x pixels. Rounded up; the decode's mid-block attention is O(tokens) with SDPA's fused kernels.
DECODE_BYTES_PER_PIXEL_FP32 = 4608
DECODE_FIXED_BYTES = 256 << 20  # kernel workspaces, allocator slack, the chunk's output copy
DECODE_MEMORY_FRACTION = 0.8  # never plan to fill the last 20% of free memory (fragmentation)
MAX_DECODE_CHUNK = 16  # the UNet's window; more frames per chunk buys little temporal context for the memory


def decode_bytes_per_frame(height: int, width: int, dtype: torch.dtype = torch.float32) -> int:
    itemsize = torch.empty((), dtype=dtype).element_size()
    return DECODE_BYTES_PER_PIXEL_FP32 * height * width * itemsize // 4


def choose_decode_chunk_size(free_bytes: int, height: int, width: int, dtype: torch.dtype = torch.float32,
                             max_chunk: int = MAX_DECODE_CHUNK) -> int:
    """Frames per VAE decode chunk for ``free_bytes`` of free memory at ``height`` x ``width`` pixels.

    Monotone in ``free_bytes``, at least 1 (a frame that does not fit is left to the allocator's OOM
    handling), at most ``max_chunk``.
    """
    if height < 1 or width < 1 or max_chunk < 1:
        raise ValueError("height, width and max_chunk must be positive")
    usable = max(0, int(free_bytes * DECODE_MEMORY_FRACTION) - DECODE_FIXED_BYTES)
    return max(1, min(max_chunk, usable // decode_bytes_per_frame(height, width, dtype)))


def free_memory_bytes(device: torch.device | str) -> int:
    """Memory this process could still use on ``device``: free device memory plus what PyTorch's caching
    allocator holds unused (CUDA), or the system's available memory (CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "mps" and hasattr(torch, "mps"):
        with_limit = getattr(torch.mps, "recommended_max_memory", None)
        if with_limit is not None:
            return int(with_limit() - torch.mps.current_allocated_memory())
    return _host_available_bytes()


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30  # unknown platform (Windows without psutil): assume a modest 8 GiB
