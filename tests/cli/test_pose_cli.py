"""The ``pose`` command: frames folder or video in, reference-size skeleton PNGs + keypoints.json out."""

from __future__ import annotations

import argparse
import importlib
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from stableanimator_core.cli import pose_command
from stableanimator_core.errors import InputError
from stableanimator_core.pose import DWPose, extract_poses, render_skeletons
from stableanimator_core.testing.onnx_mocks import person_image, write_dwpose_models

REF_W, REF_H = 320, 480


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_dwpose_models(str(tmp_path_factory.mktemp("DWPose")))


def _frame(i: int) -> np.ndarray:
    return person_image(240, 320, (110 + 6 * i, 130), (120, 200), (110 + 6 * i, 60))


@pytest.fixture
def inputs(tmp_path):
    ref = person_image(REF_H, REF_W, (160, 260), (140, 240), (160, 190))
    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(ref, cv2.COLOR_RGB2BGR))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(12):  # frame_10 and frame_11 sort after frame_9 only numerically
        cv2.imwrite(str(frames / f"frame_{i}.png"), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    (frames / "notes.txt").write_text("not a frame")
    return tmp_path


def _args(models, inputs, driving, out, *extra):
    parser = argparse.ArgumentParser()
    pose_command.add_arguments(parser)
    return parser.parse_args(["--detector", models[0], "--estimator", models[1], "--reference",
                              str(inputs / "ref.png"), "--driving", str(driving), "--out", str(out),
                              "--provider", "cpu", *extra])


def test_frames_folder(models, inputs):
    out = inputs / "poses"
    assert pose_command.run(_args(models, inputs, inputs / "frames", out, "--masks", "--mask-size", "64x96")) == 0
    names = sorted(os.listdir(out))
    assert names == sorted([f"frame_{i}.png" for i in range(12)] + ["faces", "keypoints.json"])
    # the PNGs hold the drawing's RGB values in RGB order (read back with PIL, which decodes to RGB)
    ref = np.array(Image.open(inputs / "ref.png").convert("RGB"))
    frames = [np.array(Image.open(inputs / "frames" / f"frame_{i}.png").convert("RGB")) for i in range(12)]
    expected = list(render_skeletons(extract_poses(ref, frames, DWPose(*models, provider="cpu"))))
    for i in (0, 11):
        written = np.array(Image.open(out / f"frame_{i}.png"))
        assert written.shape == (REF_H, REF_W, 3) and written.max() > 0
        np.testing.assert_array_equal(written, expected[i])
    kps = json.loads((out / "keypoints.json").read_text())
    assert len(kps) == 12 and all(k["canvas_width"] == REF_W and k["canvas_height"] == REF_H for k in kps)
    nose_x = [k["people"][0]["pose_keypoints_2d"][0] for k in kps]
    assert all(b > a for a, b in zip(nose_x, nose_x[1:]))  # frames were read in numeric order
    body = np.array(kps[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert np.ptp(body[body[:, 2] > 0, 1]) > 40  # a whole skeleton, not one collapsed point
    mask = np.array(Image.open(out / "faces" / "frame_0.png"))
    assert mask.shape == (96, 64) and set(np.unique(mask)) == {0, 255}


def test_video_input(models, inputs):
    av = pytest.importorskip("av")
    path = str(inputs / "drive.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = inputs / "video_poses"
    assert pose_command.run(_args(models, inputs, path, out, "--align", "limbs")) == 0
    assert sorted(os.listdir(out)) == sorted([f"frame_{i}.png" for i in range(5)] + ["keypoints.json"])
    assert len(json.loads((out / "keypoints.json").read_text())) == 5


def test_input_errors(models, inputs, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        pose_command.run(_args(models, inputs, tmp_path / "nope", tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        pose_command.run(_args(models, inputs, tmp_path / "empty", tmp_path / "o"))
    with pytest.raises(InputError, match="mask-size"):
        pose_command.run(_args(models, inputs, inputs / "frames", tmp_path / "o", "--masks", "--mask-size", "big"))
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="cannot open video"):
        pose_command.run(_args(models, inputs, tmp_path / "bad.mp4", tmp_path / "o"))


def test_module_has_no_heavy_imports():
    source = open(pose_command.__file__, encoding="utf-8").read()
    top = source.split("\ndef ")[0]
    for name in ("numpy", "cv2", "onnxruntime", "torch", "av"):
        assert f"import {name}" not in top


def test_dispatcher(models, inputs):
    cli = importlib.import_module("stableanimator_core.cli")
    out = inputs / "main_out"
    code = cli.main(["pose", "--detector", models[0], "--estimator", models[1], "--reference", str(inputs / "ref.png"),
                     "--driving", str(inputs / "frames"), "--out", str(out), "--provider", "cpu"])
    assert code == 0 and len(os.listdir(out)) == 13
    assert cli.main(["pose", "--detector", models[0], "--estimator", models[1], "--reference",
                     str(inputs / "missing.png"), "--driving", str(inputs / "frames"), "--out", str(out)]) == 2


@pytest.mark.parametrize("preset, differs", [("official", []), ("pack", [2, 6])])
def test_preset_official_writes_the_official_tools_pngs(models, tmp_path, preset, differs):
    import hashlib

    from stableanimator_core.testing.official_pose import OFFICIAL_SHA256, make_mixed_inputs

    make_mixed_inputs(str(tmp_path))
    out = tmp_path / "poses"
    parser = argparse.ArgumentParser()
    pose_command.add_arguments(parser)
    args = parser.parse_args(["--detector", models[0], "--estimator", models[1], "--reference",
                              str(tmp_path / "ref3.png"), "--driving", str(tmp_path / "mixed"), "--out", str(out),
                              "--provider", "cpu", "--preset", preset])
    assert pose_command.run(args) == 0
    got = [hashlib.sha256(np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(out / f"frame_{i}.png")),
                                                            cv2.COLOR_BGR2RGB)).tobytes()).hexdigest()[:16]
           for i in range(9)]
    official = OFFICIAL_SHA256["mixed_ref3"]
    assert [i for i, (g, o) in enumerate(zip(got, official)) if g != o] == differs
