"""onnxruntime import check, provider choice and the session factory (stableanimator_core.onnx_backend)."""

from __future__ import annotations

import logging
import os
import sys
import types

import numpy as np
import pytest

from stableanimator_core.loading import onnx_backend
from stableanimator_core.errors import CheckpointError, DependencyError
from stableanimator_core.testing.onnx_mocks import build_dwpose_mock, write_dwpose_models


@pytest.fixture(autouse=True)
def _fresh_state():
    onnx_backend._warned.clear()
    onnx_backend.clear_session_cache()
    yield
    onnx_backend._warned.clear()
    onnx_backend.clear_session_cache()


def _fake_cuda(monkeypatch, offered: bool, torch_gpu: bool, device: int = 0):
    import onnxruntime
    import torch

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if offered else ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: providers)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_gpu)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: device)


def test_cpu_choice_is_cpu_only():
    assert onnx_backend.resolve_providers("cpu") == ["CPUExecutionProvider"]
    assert onnx_backend.resolve_providers(" CPU ") == ["CPUExecutionProvider"]


def test_auto_takes_cuda_on_torch_device_not_hard_coded_zero(monkeypatch):
    _fake_cuda(monkeypatch, offered=True, torch_gpu=True, device=1)
    arena = {"arena_extend_strategy": "kSameAsRequested"}  # a bounded arena: grows by what is requested
    expected = [("CUDAExecutionProvider", {"device_id": 1, **arena}), "CPUExecutionProvider"]
    assert onnx_backend.resolve_providers("auto") == expected
    assert onnx_backend.resolve_providers("cuda", device_id=3)[0] == ("CUDAExecutionProvider",
                                                                       {"device_id": 3, **arena})


def test_auto_without_cuda_build_is_quiet_cpu(monkeypatch, caplog):
    _fake_cuda(monkeypatch, offered=False, torch_gpu=True)
    with caplog.at_level(logging.WARNING, logger="stableanimator_core.loading.onnx_backend"):
        assert onnx_backend.resolve_providers("auto") == ["CPUExecutionProvider"]
    assert caplog.records == []


@pytest.mark.parametrize(
    "offered, torch_gpu, reason", [(False, True, "onnxruntime-gpu"), (True, False, "no usable CUDA GPU")]
)
def test_cuda_unavailable_warns_once_and_falls_back(monkeypatch, caplog, offered, torch_gpu, reason):
    _fake_cuda(monkeypatch, offered=offered, torch_gpu=torch_gpu)
    with caplog.at_level(logging.WARNING, logger="stableanimator_core.loading.onnx_backend"):
        assert onnx_backend.resolve_providers("cuda") == ["CPUExecutionProvider"]
        assert onnx_backend.resolve_providers("cuda") == ["CPUExecutionProvider"]
        assert onnx_backend.resolve_providers("auto") == ["CPUExecutionProvider"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and reason in warnings[0] and "CPU" in warnings[0]


def test_unknown_provider_is_rejected():
    with pytest.raises(ValueError, match="auto"):
        onnx_backend.resolve_providers("tensorrt")


def test_missing_onnxruntime_names_both_builds(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(DependencyError) as err:
        onnx_backend.require_onnxruntime()
    assert "pip install onnxruntime-gpu" in str(err.value) and "pip install onnxruntime`" in str(err.value)


def test_half_uninstalled_onnxruntime_is_detected(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))  # no __version__
    with pytest.raises(DependencyError, match="pip uninstall -y onnxruntime onnxruntime-gpu"):
        onnx_backend.require_onnxruntime()
    with pytest.raises(DependencyError):
        onnx_backend.get_session("whatever.onnx", "cpu")


def test_missing_model_names_file_folder_and_source(tmp_path):
    with pytest.raises(CheckpointError) as err:
        onnx_backend.get_session(str(tmp_path / "yolox_l.onnx"), "cpu")
    msg = str(err.value)
    assert "yolox_l.onnx" in msg and str(tmp_path) in msg
    assert "huggingface.co/FrancisRing/StableAnimator/tree/main/DWPose" in msg and "yzd-v/DWPose" in msg


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n", "Git-LFS"),
    (b"\x08\x01garbage that is not a protobuf" * 10, "could not be loaded"),
])
def test_unusable_model_file_is_a_checkpoint_error(tmp_path, content, expected):
    path = tmp_path / "dw-ll_ucoco_384.onnx"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as err:
        onnx_backend.get_session(str(path), "cpu")
    assert "dw-ll_ucoco_384.onnx" in str(err.value) and "DWPose" in str(err.value)


def test_sessions_are_cached_per_file_and_provider(tmp_path):
    det, pose = write_dwpose_models(str(tmp_path))
    s1 = onnx_backend.get_session(pose, "cpu")
    assert onnx_backend.get_session(pose, "cpu") is s1
    assert onnx_backend.get_session(det, "cpu") is not s1
    assert s1.get_providers() == ["CPUExecutionProvider"]
    out = s1.run(None, {"input": np.zeros((1, 3, 384, 288), np.float32)})
    assert [o.shape for o in out] == [(1, 133, 576), (1, 133, 768)]
    # a replaced file (new mtime) gets a new session
    with open(pose, "wb") as fh:
        fh.write(build_dwpose_mock().SerializeToString())
    os.utime(pose, ns=(1, 1))
    assert onnx_backend.get_session(pose, "cpu") is not s1


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_cuda_dropped_by_onnxruntime_is_reported_once(monkeypatch, tmp_path, caplog):
    _fake_cuda(monkeypatch, offered=True, torch_gpu=True)  # this CPU build then ignores the CUDA request
    det, pose = write_dwpose_models(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="stableanimator_core.loading.onnx_backend"):
        s1, s2 = onnx_backend.get_session(det, "auto"), onnx_backend.get_session(pose, "auto")
    assert s1.get_providers() == s2.get_providers() == ["CPUExecutionProvider"]
    assert len(caplog.records) == 1 and "could not start CUDA" in caplog.records[0].getMessage()


def test_cuda_session_failure_falls_back_to_cpu_but_broken_files_still_fail(monkeypatch, tmp_path, caplog):
    import onnxruntime

    _fake_cuda(monkeypatch, offered=True, torch_gpu=True)
    real = onnxruntime.InferenceSession

    def session(path, sess_options=None, providers=None):
        if any("CUDA" in str(p) for p in providers):
            raise RuntimeError("CUDA failure 100: no CUDA-capable device")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    _, pose = write_dwpose_models(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="stableanimator_core.loading.onnx_backend"):
        assert onnx_backend.get_session(pose, "cuda").get_providers() == ["CPUExecutionProvider"]
    assert "could not open a CUDA session" in caplog.text and "no CUDA-capable device" in caplog.text
    bad = tmp_path / "yolox_l.onnx"
    bad.write_bytes(b"\x08\x01not onnx" * 20)
    with pytest.raises(CheckpointError, match="could not be loaded"):
        onnx_backend.get_session(str(bad), "cuda")


def test_model_source_hints():
    assert "antelopev2" in onnx_backend.model_source("/x/glintr100.onnx")
    assert "DWPose" in onnx_backend.model_source("YOLOX_L.onnx")


def test_cpu_sessions_keep_their_arena_so_ram_stays_flat_over_a_video(tmp_path):
    """Without the CPU arena onnxruntime's per-frame allocations grow the process: 400 DWPose calls on one
    256x256 frame (mock models) went from 190 to 676 MB RSS, against a flat 121 MB with it."""
    det, _ = write_dwpose_models(str(tmp_path))
    assert onnx_backend.get_session(det, "cpu").get_session_options().enable_cpu_mem_arena is True


def test_release_sessions_frees_this_cache_and_insightfaces(tmp_path):
    from stableanimator_core.identity.antelopev2 import load_antelopev2
    from stableanimator_core.testing.onnx_mocks import write_antelopev2_pack

    det, pose = write_dwpose_models(str(tmp_path))
    write_antelopev2_pack(str(tmp_path / "insightface"))
    session = onnx_backend.get_session(det, "cpu")
    onnx_backend.get_session(pose, "cpu")
    faces = load_antelopev2(str(tmp_path / "insightface"), "cpu")
    assert onnx_backend.get_session(det, "cpu") is session and load_antelopev2(str(tmp_path / "insightface"), "cpu") is faces
    assert onnx_backend.release_sessions() == 3  # two DWPose sessions and one antelopev2 pack
    assert onnx_backend.cached_session_count() == 0
    assert onnx_backend.get_session(det, "cpu") is not session  # loaded again on the next use
    assert load_antelopev2(str(tmp_path / "insightface"), "cpu") is not faces
    assert onnx_backend.release_sessions() == 2
