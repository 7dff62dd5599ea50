"""Running one GPU stage inside a node: load its models, turn out-of-memory into advice, release afterwards."""

from __future__ import annotations

import contextlib
import gc
import logging
from typing import Iterator, Sequence

from ..stableanimator_core.errors import OutOfMemoryError, is_cpu_allocation_failure
from ..stableanimator_core.loading.onnx_backend import release_sessions
from . import comfy_bridge as bridge

log = logging.getLogger("StableAnimator")


@contextlib.contextmanager
def gpu_stage(groups: Sequence[bridge.ManagedModels], stage: str, advice: str, keep_loaded: bool = False,
              memory_required: int = 0) -> Iterator[None]:
    """Models of ``groups`` are on the compute device inside the block.

    On out-of-memory the models are released and the error names the settings that lower memory use; on any
    exit (success, error, interrupt) they are released unless ``keep_loaded``.
    """
    oom = bridge.oom_types()
    failed = False
    try:
        make_room(memory_required)
        for g in groups:
            g.load(memory_required)
        yield
    except oom as exc:
        failed = True
        _release(groups)
        raise OutOfMemoryError(
            f"Out of GPU memory during {stage}. Lower memory use with: {advice}. "
            f"The models were moved off the GPU; ComfyUI keeps running. ({str(exc).splitlines()[0][:200]})"
        ) from exc
    except (MemoryError, RuntimeError) as exc:
        failed = True
        if not is_cpu_allocation_failure(exc):
            raise
        _release(groups)
        raise OutOfMemoryError(
            f"Out of system memory (RAM) during {stage}. Lower memory use with: {advice}; fewer frames also help. "
            f"Close other programs or models; ComfyUI keeps running. ({str(exc).splitlines()[0][:200]})"
        ) from exc
    except BaseException:
        failed = True
        raise
    finally:
        if failed or not keep_loaded:
            _release(groups)


def make_room(memory_required: int) -> None:
    """Before a GPU stage: when the free device memory is below its need, drop the cached ONNX sessions (DWPose,
    antelopev2). Their arenas sit outside ComfyUI's memory manager, so it cannot evict them itself; they are
    loaded again when next used."""
    device = bridge.torch_device()
    if memory_required <= 0 or device.type == "cpu":
        return
    free = bridge.free_memory_bytes(device)
    if free >= memory_required:
        return
    released = release_sessions()
    if released:
        gc.collect()
        bridge.soft_empty_cache()
        log.info("freed %d ONNX session(s): %.1f GB free, %.1f GB needed", released, free / 1e9,
                 memory_required / 1e9)


def _release(groups: Sequence[bridge.ManagedModels]) -> None:
    for g in groups:
        try:
            g.release()
        except Exception as exc:  # releasing must never hide the original error
            log.warning("could not release models: %s", exc)
    gc.collect()
    bridge.soft_empty_cache()


SAMPLER_ADVICE = ("fewer frames per window (tile_size, e.g. 8-12), a lower resolution, precision fp16/bf16, "
                  "or HJB mode 'memory_bounded' / 'fast'")
DECODE_ADVICE = "a smaller decode_chunk_size (e.g. 2 or 1) or a lower resolution"
ENCODE_ADVICE = "precision fp16/bf16 in the model loader, or close other models (ComfyUI's 'Unload models')"
