"""The download command's layout logic (no network: the fetchers are replaced)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from stableanimator_core.loading import catalogue, download
from stableanimator_core.loading.layout import ModelLayout


def _fake_hf(dest: Path) -> None:
    for rel in ("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth",
                "Animation/glintr100_torch.pth", "DWPose/yolox_l.onnx", "DWPose/dw-ll_ucoco_384.onnx",
                "SVD/vae/config.json", "SVD/image_encoder/config.json"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text("x")


def _fake_zip_fetch(url: str, dest: Path) -> Path:
    assert url == download.ANTELOPEV2_URL
    with zipfile.ZipFile(dest, "w") as z:  # the real zip nests the folder
        for name in catalogue.ANTELOPEV2_FILES:
            z.writestr(f"antelopev2/{name}", b"onnx")
    return dest


def test_download_fills_the_layout_and_is_idempotent(tmp_path):
    calls = []

    def hf(dest):
        calls.append(dest)
        _fake_hf(dest)

    antelope = lambda dest: download.download_antelopev2(dest, fetch=_fake_zip_fetch)  # noqa: E731
    download.run_download(tmp_path, stableanimator=hf, antelopev2=antelope)
    layout = ModelLayout.from_models_dir(tmp_path)
    assert layout.missing(["unet", "pose_net", "face_encoder", "face_embedder", "svd", "dwpose_detector",
                           "dwpose_estimator", "insightface_root"]) == []
    pack = tmp_path / "insightface" / "models" / "antelopev2"
    assert sorted(p.name for p in pack.iterdir()) == sorted(catalogue.ANTELOPEV2_FILES)
    assert calls == [tmp_path / "stableanimator"]
    download.run_download(tmp_path, stableanimator=hf, antelopev2=pytest.fail)  # nothing missing: no fetch
    assert len(calls) == 1


def test_nested_antelopev2_is_repaired_without_downloading(tmp_path):
    nested = tmp_path / "insightface" / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    for name in catalogue.ANTELOPEV2_FILES:
        (nested / name).write_bytes(b"onnx")
    _fake_hf(tmp_path / "stableanimator")
    download.run_download(tmp_path, stableanimator=pytest.fail, antelopev2=pytest.fail)
    pack = tmp_path / "insightface" / "models" / "antelopev2"
    assert (pack / "scrfd_10g_bnkps.onnx").is_file() and not (pack / "antelopev2").exists()


def test_hf_patterns_skip_the_unused_svd_unet_weights():
    assert "SVD/unet/config.json" in download.HF_ALLOW_PATTERNS
    assert not any(p.startswith("SVD/unet/diffusion") or p == "SVD/*" for p in download.HF_ALLOW_PATTERNS)


def test_download_script_runs_from_the_comfyui_folder(tmp_path):
    """`python custom_nodes/ComfyUI-StableAnimator/download_models.py` from the ComfyUI root (the command the README,
    the workflows' Notes and the missing-model errors quote): it imports, and its default target is ComfyUI/models
    even when the pack is a link."""
    import subprocess
    import sys

    from stableanimator_core.loading.layout import PACK_ROOT, default_models_dir, download_command

    comfy = tmp_path / "ComfyUI"
    (comfy / "custom_nodes").mkdir(parents=True)
    (comfy / "custom_nodes" / "ComfyUI-StableAnimator").symlink_to(PACK_ROOT, target_is_directory=True)
    run = subprocess.run([sys.executable, "custom_nodes/ComfyUI-StableAnimator/download_models.py", "--help"],
                         cwd=comfy, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--models" in run.stdout and "Traceback" not in run.stderr
    assert default_models_dir(comfy / "custom_nodes" / "ComfyUI-StableAnimator") == comfy / "models"
    assert default_models_dir(tmp_path / "elsewhere") == Path("models")
    assert download_command("/x/models") == f"python {PACK_ROOT / 'download_models.py'} --models /x/models"
