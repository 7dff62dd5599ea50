"""Model names stay inside the models folders; fingerprints notice files rewritten in place."""

from __future__ import annotations

import os
import time

import pytest

from stableanimator_core.errors import CheckpointError
from stableanimator_core.loading.model_folders import confined_path, find_in_folders

ESCAPES = ["../../../../etc/passwd", "/etc/passwd", "Animation/../../x.pth", "..", "..\\..\\secret.pth",
           "C:/Windows/win.ini", "a\x00b"]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_that_leave_the_folder_are_refused_without_probing(tmp_path, name):
    assert confined_path(tmp_path / "models", name) is None
    with pytest.raises(CheckpointError) as err:
        find_in_folders([tmp_path / "models"], name)
    assert str(tmp_path / "models") in str(err.value) and "relative to the models folders" in str(err.value)


def test_names_inside_the_folder_resolve(tmp_path):
    (tmp_path / "Animation").mkdir()
    (tmp_path / "Animation" / "unet.pth").write_bytes(b"x")
    assert find_in_folders([tmp_path], "Animation/unet.pth") == tmp_path / "Animation" / "unet.pth"
    assert find_in_folders([tmp_path], "Animation/./x/../unet.pth") == tmp_path / "Animation" / "unet.pth"
    assert find_in_folders([tmp_path], "Animation/missing.pth") is None


def test_a_user_symlink_inside_the_models_folder_still_works(tmp_path):
    elsewhere = tmp_path / "big_disk"
    elsewhere.mkdir()
    (elsewhere / "unet.pth").write_bytes(b"x")
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(elsewhere, models / "Animation")
    assert find_in_folders([models], "Animation/unet.pth") == models / "Animation" / "unet.pth"


def test_bridge_loaders_refuse_paths_outside_and_do_not_reveal_them(bridge, standalone_models):
    messages = []
    for name in ("../../../../etc/passwd", "../../../../etc/no_such_file"):  # one exists, one does not
        with pytest.raises(Exception, match="relative to the models folders") as err:
            bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, name, "UNet")
        messages.append(str(err.value).replace(name, "NAME"))
        assert bridge.files_fingerprint(bridge.STABLEANIMATOR_FOLDER, [name]) == f"{name}:outside"
    assert messages[0] == messages[1]  # nothing tells whether the probed file exists
    with pytest.raises(Exception, match="relative to the models folders"):
        bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, "/etc/passwd", "UNet")


@pytest.mark.parametrize("name", ["stableanimator/../../../etc", "/etc", "../x/SVD", "stableanimator//etc",
                                  "diffusers/../../../tmp"])
def test_bridge_svd_folder_refuses_paths_outside(bridge, standalone_models, name):
    with pytest.raises(Exception, match="relative to the models folders"):
        bridge.resolve_svd_folder(name)


def test_model_loader_refuses_a_linked_path_outside(nodes, tmp_path):
    (tmp_path / "unet.pth").write_bytes(b"not loaded")
    with pytest.raises(Exception, match="not a model name"):
        nodes["StableAnimatorModelLoader"]().load(str(tmp_path / "unet.pth"), "Animation/pose_net.pth",
                                                  "Animation/face_encoder.pth", "stableanimator/SVD", "fp32")


def _touch_rewrite(path):
    data = path.read_bytes()
    time.sleep(0.01)
    path.write_bytes(data + b"\0")  # same name, new content (size and mtime change)


def test_loader_fingerprint_notices_svd_vae_and_image_encoder_rewritten_in_place(nodes, standalone_models):
    loader = nodes["StableAnimatorModelLoader"]
    args = ("Animation/unet.pth", "Animation/pose_net.pth", "Animation/face_encoder.pth", "stableanimator/SVD", "fp32")
    for sub in ("vae", "image_encoder"):
        before = loader.IS_CHANGED(*args)
        weights = next(p for p in (standalone_models / "stableanimator" / "SVD" / sub).iterdir()
                       if p.suffix in (".safetensors", ".bin"))
        original = weights.read_bytes()
        try:
            _touch_rewrite(weights)
            assert loader.IS_CHANGED(*args) != before, sub
        finally:
            weights.write_bytes(original)


def test_dwpose_node_fingerprint_notices_onnx_rewritten_in_place(nodes, standalone_models):
    node = nodes["StableAnimatorDWPose"]
    args = {"detector": "DWPose/yolox_l.onnx", "estimator": "DWPose/dw-ll_ucoco_384.onnx"}
    before = node.IS_CHANGED(**args)
    onnx = standalone_models / "stableanimator" / "DWPose" / "yolox_l.onnx"
    original = onnx.read_bytes()
    try:
        _touch_rewrite(onnx)
        assert node.IS_CHANGED(**args) != before
    finally:
        onnx.write_bytes(original)
