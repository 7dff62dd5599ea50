"""Reading driving media (a video file, a folder of ``frame_<i>.png`` or one image) and writing H.264 mp4.

PyAV is used for both directions: it bundles FFmpeg with libx264, so no system FFmpeg is needed.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
from PIL import Image

from ..errors import DependencyError, InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def _av():
    try:
        import av
    except ImportError as exc:
        raise DependencyError("reading and writing video needs PyAV: pip install av") from exc
    return av


def frame_files(folder: Path) -> list[Path]:
    """Images of a folder sorted by the integer in their name (``frame_10`` after ``frame_9``), never by the
    filesystem's order."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"no images found in {folder}")

    def key(p: Path):
        numbers = re.findall(r"\d+", p.stem)
        return (int(numbers[-1]) if numbers else -1, p.name)

    return sorted(files, key=key)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            return image_to_rgb8(image)
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"image {path} is too large to read safely ({exc}); downscale it first") from exc


def image_to_rgb8(image: Image.Image) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of any PIL image. 16- and 32-bit grayscale are rescaled from their own range:
    PIL's ``convert("RGB")`` clips them at 255, which turns a 16-bit photo almost white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or (image.mode == "I" and a.max(initial=0) > 255) else 255.0
        if image.mode == "F":
            top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(image.convert("RGB"))


def _open_video(path: Path):
    av = _av()
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises its own error types per FFmpeg failure
        raise InputError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream (audio only, or an empty file); give a video with frames")
    return container


def iter_video_frames(path: Path, max_frames: Optional[int] = None, stride: int = 1) -> Iterator[np.ndarray]:
    """RGB uint8 frames, decoded one at a time (a long video never sits in memory)."""
    av = _av()
    check_frame_selection(max_frames, stride)
    container = _open_video(path)
    with container:
        kept, i = 0, -1
        frames = container.decode(video=0)
        while max_frames is None or kept < max_frames:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise InputError(f"{path} is damaged after frame {i + 1} ({exc}). Re-encode it (e.g. ffmpeg -i in.mp4 "
                                 f"-c:v libx264 out.mp4), or use only the frames before it (max frames "
                                 f"{max(1, (i + 1) // stride)}).") from exc
            i += 1
            if i % stride:
                continue
            yield frame.to_ndarray(format="rgb24")
            kept += 1


def check_frame_selection(max_frames: Optional[int], stride: int) -> None:
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max frames must be at least 1 (or unset for the whole video), got {max_frames}")
    if stride < 1:
        raise InputError(f"frame stride must be at least 1, got {stride}")


def video_fps(path: Path) -> Optional[float]:
    with _open_video(path) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else None


def video_frame_count(path: Path) -> Optional[int]:
    """The frame count the container declares (None when it does not say); used for estimates only."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        if stream.duration and stream.time_base and stream.average_rate:
            return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
        return None


def iter_driving_frames(source: str | Path, max_frames: Optional[int] = None,
                        stride: int = 1) -> tuple[Iterator[np.ndarray], Optional[float]]:
    """Like :func:`read_frames`, but the frames come one at a time (a generator) so a long video is never
    held in memory; the frame rate is known up front."""
    source = Path(source)
    check_frame_selection(max_frames, stride)
    if source.is_dir():
        files = frame_files(source)[::stride][:max_frames]
        return (read_image(p) for p in files), None
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return iter([read_image(source)]), None
    if not source.is_file():
        raise InputError(f"driving input not found: {source}")
    fps = video_fps(source)
    return _non_empty(iter_video_frames(source, max_frames, stride), source), (fps / stride if fps else None)


def _non_empty(frames: Iterator[np.ndarray], source: Path) -> Iterator[np.ndarray]:
    count = 0
    for f in frames:
        count += 1
        yield f
    if not count:
        raise InputError(f"no frames could be read from {source} (a header without frames?)")


def read_frames(source: str | Path, max_frames: Optional[int] = None, stride: int = 1) -> tuple[list[np.ndarray], Optional[float]]:
    """RGB uint8 frames and the frame rate (None for images) of a video file, an image folder or one image."""
    source = Path(source)
    check_frame_selection(max_frames, stride)
    if source.is_dir():
        files = frame_files(source)[::stride]
        frames = [read_image(p) for p in files[:max_frames]]
        fps = None
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        frames, fps = [read_image(source)], None
    elif source.is_file():
        frames = list(iter_video_frames(source, max_frames, stride))
        fps = video_fps(source)
        fps = fps / stride if fps else None
    else:
        raise InputError(f"driving input not found: {source}")
    if not frames:
        raise InputError(f"no frames could be read from {source}")
    return frames, fps


class Mp4Writer:
    """H.264 (yuv420p) mp4 written frame by frame; odd sizes are padded by one pixel (yuv420p needs even ones).

    The video goes to a hidden file next to ``path`` and is moved into place when closed without error, so a
    failed or interrupted run never leaves a truncated video under the requested name."""

    def __init__(self, path: str | Path, fps: float, crf: int = 18) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self.fps, self.crf = fps, crf
        self.count = 0
        self._av = _av()
        self._container = self._av.open(str(self.partial), mode="w", format="mp4")
        self._stream = None
        self._size: Optional[tuple[int, int]] = None

    def write(self, frame) -> None:
        a = _to_uint8(frame)
        h, w = a.shape[:2]
        if self._stream is None:
            self._size = (h, w)
            self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height, self._stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
            self._stream.options = {"crf": str(self.crf)}
        elif (h, w) != self._size:
            raise InputError("all frames of a video must have the same size")
        if h % 2 or w % 2:
            a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(a, format="rgb24")):
            self._container.mux(packet)
        self.count += 1

    def close(self, ok: bool = True) -> None:
        try:
            if ok and self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            try:
                self._container.close()
            except Exception:
                if ok:
                    raise
                # already failing: the original error matters, not the muxer's complaint about an unfinished file
        if ok and self.count:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)
            if ok:
                raise InputError("no frames to write")

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def write_mp4(path: str | Path, frames: Iterable[np.ndarray] | np.ndarray, fps: float, crf: int = 18) -> Path:
    """H.264 (yuv420p) mp4. ``frames``: uint8 ``[H, W, 3]`` or float 0..1, or batches of them (``[n, H, W, 3]``)."""
    with Mp4Writer(path, fps, crf) as writer:
        for f in frames:
            for one in (f if getattr(f, "ndim", 3) == 4 else [f]):
                writer.write(one)
    return Path(path)


def check_writable(path: str | Path) -> Path:
    """Fail before any work when the output cannot be written (the result would be lost after sampling)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name such as {path / 'animation.mp4'}")
    if path.suffix.lower() != ".mp4":
        raise InputError(f"--out {path} must end in .mp4 (the video is H.264 in an mp4 container)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.stem}.write-test")
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise InputError(f"cannot write the output {path} ({exc.strerror or exc}); choose a folder you can write "
                         f"to") from exc
    return path


def _to_uint8(frame) -> np.ndarray:
    a = frame.detach().cpu().numpy() if hasattr(frame, "detach") else np.asarray(frame)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])
