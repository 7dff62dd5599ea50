"""Before a GPU stage, ONNX sessions (outside ComfyUI's memory manager) are freed when the device memory is short."""

from __future__ import annotations

import torch

from stableanimator_core.testing.onnx_mocks import write_dwpose_models


def _cached_session(pack, tmp_path):
    backend = pack.stableanimator_core.loading.onnx_backend
    backend.release_sessions()
    det, _ = write_dwpose_models(str(tmp_path))
    backend.get_session(det, "cpu")
    assert backend.cached_session_count() == 1
    return backend


def test_a_gpu_stage_short_of_memory_frees_the_onnx_sessions(pack, tmp_path, monkeypatch):
    backend = _cached_session(pack, tmp_path)
    bridge, stage = pack.nodes.comfy_bridge, pack.nodes.gpu_session
    monkeypatch.setattr(bridge, "torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(bridge, "soft_empty_cache", lambda: None)
    monkeypatch.setattr(bridge, "free_memory_bytes", lambda device: 8 << 30)
    stage.make_room(4 << 30)  # enough free: the sessions stay (reloading DWPose costs seconds)
    assert backend.cached_session_count() == 1
    monkeypatch.setattr(bridge, "free_memory_bytes", lambda device: 1 << 30)
    with stage.gpu_stage([], "sampling", stage.SAMPLER_ADVICE, memory_required=4 << 30):
        assert backend.cached_session_count() == 0


def test_on_the_cpu_the_sessions_stay(pack, tmp_path, monkeypatch):
    backend = _cached_session(pack, tmp_path)
    bridge, stage = pack.nodes.comfy_bridge, pack.nodes.gpu_session
    monkeypatch.setattr(bridge, "torch_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(bridge, "free_memory_bytes", lambda device: 0)
    stage.make_room(4 << 30)
    assert backend.cached_session_count() == 1
    backend.release_sessions()
