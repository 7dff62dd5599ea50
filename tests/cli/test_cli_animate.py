"""``python -m stableanimator_core animate`` end to end on the tiny models folder: a real mp4 comes out."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from stableanimator_core.cli import main

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "example_workflows" / "inputs"


def _decode(path: Path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        return stream.codec_context.name, float(stream.average_rate), frames


CONTROLS = ["--framing", "crop", "--crop-on", "face", "--first-frame-fix", "--id-strength", "0.5", "--id-start", "0.5",
            "--pose-strength", "0.8", "--pose-end", "0.5", "--hjb", "--hjb-iterations", "1", "--hjb-end", "0"]


@pytest.mark.parametrize("extra", [[], ["--hjb", "--hjb-iterations", "1", "--hjb-end", "0"], CONTROLS],
                         ids=["basic", "hjb", "controls"])
def test_animate_writes_an_h264_mp4(tiny_models_dir, tmp_path, extra, caplog):
    caplog.set_level("INFO")
    out = tmp_path / "animation.mp4"
    code = main(["animate", "--models", str(tiny_models_dir), "--reference", str(INPUTS / "stableanimator_reference.png"),
                 "--driving", str(INPUTS / "stableanimator_driving.mp4"), "--out", str(out), "--width", "64",
                 "--height", "128", "--steps", "2", "--max-frames", "5", "--tile-size", "3", "--tile-overlap", "1",
                 "--precision", "fp32", *extra])
    assert code == 0
    codec, fps, frames = _decode(out)
    assert codec == "h264" and fps == pytest.approx(8.0)
    assert len(frames) == 5 and frames[0].shape == (128, 64, 3)  # the first-frame fix keeps the length
    assert max(f.std() for f in frames) > 1.0  # not a blank video
    assert "first-pose check:" in caplog.text


def test_animate_missing_models_is_a_clear_error(tmp_path, capsys):
    code = main(["animate", "--models", str(tmp_path), "--reference", str(INPUTS / "stableanimator_reference.png"),
                 "--driving", str(INPUTS / "stableanimator_driving.mp4"), "--out", str(tmp_path / "x.mp4")])
    assert code == 2
    err = capsys.readouterr().err
    assert "weights are missing" in err and str(tmp_path / "stableanimator" / "Animation" / "unet.pth") in err
    assert f"python {REPO / 'download_models.py'} --models {tmp_path}" in err  # runnable from any folder


def _parse(*extra):
    from stableanimator_core.cli import build_parser
    from stableanimator_core.cli.animate_command import options_from_args

    return options_from_args(build_parser().parse_args(["animate", "--reference", "r.png", "--driving", "d.mp4",
                                                        "--out", "o.mp4", *extra]))


def test_preset_official_sets_every_official_choice_and_explicit_options_win():
    pack, official = _parse(), _parse("--preset", "official")
    assert (pack.person, pack.missing, pack.min_keypoints, pack.arcface_channels, pack.no_face, pack.hjb_window,
            pack.hjb_boxes, pack.hjb_mode, pack.precision) == (
        "largest", "empty", 1, "training", "error", "tiled", "skeleton", "memory_bounded", "auto")
    assert (official.person, official.missing, official.min_keypoints, official.arcface_channels, official.no_face,
            official.hjb_window, official.hjb_boxes, official.hjb_mode, official.precision) == (
        "all", "whole_image", 0, "official_inference", "official", "all_frames", "official", "faithful", "official")
    mixed = _parse("--preset", "official", "--precision", "fp32", "--person", "largest")
    assert mixed.precision == "fp32" and mixed.person == "largest" and mixed.hjb_window == "all_frames"


@pytest.mark.parametrize("extra", [[], ["--hjb", "--hjb-iterations", "1", "--hjb-end", "0"]], ids=["basic", "hjb"])
def test_animate_with_the_official_preset(tiny_models_dir, tmp_path, extra):
    out = tmp_path / "animation.mp4"
    code = main(["animate", "--models", str(tiny_models_dir), "--reference", str(INPUTS / "stableanimator_reference.png"),
                 "--driving", str(INPUTS / "stableanimator_driving.mp4"), "--out", str(out), "--width", "64",
                 "--height", "128", "--steps", "2", "--max-frames", "5", "--tile-size", "3", "--tile-overlap", "1",
                 "--preset", "official", *extra])
    assert code == 0
    _, _, frames = _decode(out)
    assert len(frames) == 5 and max(f.std() for f in frames) > 1.0
