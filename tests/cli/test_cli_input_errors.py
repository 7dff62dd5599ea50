"""Bad input to ``animate``: one clear line, a non-zero exit, no video, and no expensive stage when the fault is
knowable up front (issue 12, items 5 and 6)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import stableanimator_core.loading.components as loading
import stableanimator_core.pose as pose
from stableanimator_core.cli import main
from stableanimator_core.io.video import write_mp4

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "example_workflows" / "inputs"
REFERENCE = INPUTS / "stableanimator_reference.png"
DRIVING = INPUTS / "stableanimator_driving.mp4"


class _Expensive(Exception):
    pass


@pytest.fixture
def no_expensive_stage(monkeypatch):
    """Pose extraction and model loading raise: a fault knowable up front must be reported before them."""
    def refuse(*_a, **_k):
        raise _Expensive("an expensive stage ran")

    monkeypatch.setattr(pose, "DWPose", refuse)
    monkeypatch.setattr(loading, "load_models", refuse)


def _animate(models, out, *extra, reference=REFERENCE, driving=DRIVING):
    return main(["animate", "--models", str(models), "--reference", str(reference), "--driving", str(driving),
                 "--out", str(out), "--width", "64", "--height", "128", "--steps", "1", "--max-frames", "3",
                 "--tile-size", "3", "--tile-overlap", "1", "--precision", "fp32", *extra])


def _one_clear_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    return path


def _corrupt_midway(path: Path) -> Path:
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64, 3)).astype(np.uint8) for i in range(30)]
    write_mp4(path, frames, 8)
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 3000] = bytes(3000)
    path.write_bytes(bytes(data))
    return path


UP_FRONT = {
    "steps 0": (["--steps", "0"], "steps must be at least 1"),
    "guidance 1": (["--guidance", "1.0"], "guidance must be greater than 1"),
    "overlap = tile": (["--tile-size", "16", "--tile-overlap", "16"], "must be below tile_size (16)"),
    "hjb start past the steps": (["--hjb", "--steps", "25", "--hjb-start", "30"], "beyond the last step (24"),
    "max frames 0": (["--max-frames", "0"], "max frames must be at least 1"),
    "stride 0": (["--frame-stride", "0"], "stride must be at least 1"),
    "decode chunk 0": (["--decode-chunk-size", "0"], "decode-chunk-size must be at least 1"),
}


@pytest.mark.parametrize("case", list(UP_FRONT))
def test_bad_settings_fail_before_any_work(tiny_models_dir, tmp_path, capsys, no_expensive_stage, case):
    args, message = UP_FRONT[case]
    out = tmp_path / "out.mp4"
    assert _animate(tiny_models_dir, out, *args) == 2
    assert message in _one_clear_line(capsys)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unwritable_output_fails_before_any_work(tiny_models_dir, tmp_path, capsys, no_expensive_stage):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert _animate(tiny_models_dir, blocker / "out.mp4") == 2
    assert "cannot write the output" in _one_clear_line(capsys)
    assert _animate(tiny_models_dir, tmp_path) == 2  # a folder
    assert "is a folder" in _one_clear_line(capsys)


@pytest.mark.parametrize("kind", ["audio only", "not a video"])
def test_driving_without_video_stream_fails_before_any_work(tiny_models_dir, tmp_path, capsys, no_expensive_stage,
                                                            kind):
    driving = _audio_only(tmp_path / "a.mp4") if kind == "audio only" else tmp_path / "b.mp4"
    if kind == "not a video":
        driving.write_bytes(b"\x00\x00\x00 ftypisom" + bytes(20))  # a header and nothing else
    out = tmp_path / "out.mp4"
    assert _animate(tiny_models_dir, out, driving=driving) == 2
    err = _one_clear_line(capsys)
    assert "no video stream" in err or "cannot open video" in err
    assert not out.exists()


def test_tiny_reference_fails_before_any_work(tiny_models_dir, tmp_path, capsys, no_expensive_stage):
    ref = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 100, 50)).save(ref)
    out = tmp_path / "out.mp4"
    assert _animate(tiny_models_dir, out, "--align", "none", "--no-identity", reference=ref) == 2
    assert "the reference image is 1x1 pixels" in _one_clear_line(capsys)
    assert not out.exists()


def test_corrupt_driving_video_is_one_line_and_no_video(tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    driving = _corrupt_midway(tmp_path / "bad.mp4")
    code = main(["animate", "--models", str(tiny_models_dir), "--reference", str(REFERENCE), "--driving",
                 str(driving), "--out", str(out), "--width", "64", "--height", "64", "--steps", "1"])
    assert code == 2
    assert "is damaged after frame" in _one_clear_line(capsys)
    assert not out.exists()


def test_out_of_ram_is_one_line_with_advice_and_no_video(tiny_models_dir, tmp_path, capsys, monkeypatch):
    def no_ram(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 123456789 bytes.")

    monkeypatch.setattr(loading, "load_models", no_ram)
    out = tmp_path / "out.mp4"
    assert _animate(tiny_models_dir, out) == 3
    err = _one_clear_line(capsys)
    assert "out of memory (RAM)" in err and "--max-frames" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_width_not_multiple_of_64_is_rounded_as_the_readme_says(tiny_models_dir, tmp_path, caplog):
    out = tmp_path / "out.mp4"
    code = main(["animate", "--models", str(tiny_models_dir), "--reference", str(REFERENCE), "--driving", str(DRIVING),
                 "--out", str(out), "--width", "100", "--height", "64", "--steps", "1", "--max-frames", "2",
                 "--precision", "fp32"])
    assert code == 0 and "width 100 is not a multiple of 64" in caplog.text
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (64, 128, 3)


def test_a_failure_while_writing_leaves_no_partial_video(tiny_models_dir, tmp_path, monkeypatch, capsys):
    import stableanimator_core.pipeline.decode as decode

    original = decode.iter_decoded_frames

    def fail_after_first_chunk(*a, **k):
        gen = original(*a, **k)
        yield next(gen)
        raise RuntimeError("decoder broke")

    monkeypatch.setattr(decode, "iter_decoded_frames", fail_after_first_chunk)
    out = tmp_path / "out.mp4"
    assert _animate(tiny_models_dir, out, "--decode-chunk-size", "1") == 1
    assert "decoder broke" in _one_clear_line(capsys)
    assert not list(tmp_path.iterdir())


def test_long_driving_video_warns_with_the_expected_ram_before_the_work(tiny_models_dir, tmp_path, caplog,
                                                                      monkeypatch):
    import stableanimator_core.pipeline.memory_estimate as estimate
    from stableanimator_core.cli.job import AnimateOptions, plan_animation

    monkeypatch.setattr(estimate, "LONG_VIDEO_FRAMES", 10)  # the example clip has 16 frames
    plan = plan_animation(AnimateOptions(reference=REFERENCE, driving=DRIVING, out=tmp_path / "o.mp4",
                                         models=tiny_models_dir, width=256, height=256))
    assert plan.expected_frames == 16
    gib = estimate.expected_ram_bytes(16, 256, 256) / 2**30
    assert f"16 frames at 256x256: expect about {gib:.1f} GiB of RAM" in caplog.text
