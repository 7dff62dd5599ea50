"""Video reading (sorted frame folders, mp4) and H.264 mp4 writing through PyAV."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from stableanimator_core.errors import InputError
from stableanimator_core.io.video import read_frames, write_mp4


def test_mp4_round_trip(tmp_path):
    frames = [np.full((64, 48, 3), 20 * i, np.uint8) for i in range(6)]
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=8)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (64, 48, 3)
    assert abs(int(decoded[5].mean()) - 100) <= 3  # lossy, but the content is there
    back, fps = read_frames(path)
    assert len(back) == 6 and fps == pytest.approx(8)
    assert len(read_frames(path, max_frames=2, stride=2)[0]) == 2


def test_float_frames_and_odd_sizes(tmp_path):
    frames = np.random.default_rng(0).random((3, 33, 21, 3)).astype(np.float32)
    path = write_mp4(tmp_path / "odd.mp4", frames, fps=7)
    with av.open(str(path)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (22, 34)


def test_frame_folder_is_sorted_by_index_not_name(tmp_path):
    for i in (10, 2, 1, 0):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"frame_{i}.png")
    frames, fps = read_frames(tmp_path)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 1, 2, 10]
    assert fps is None


def test_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_frames(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        read_frames(tmp_path / "empty")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="cannot open video"):
        read_frames(tmp_path / "bad.mp4")
