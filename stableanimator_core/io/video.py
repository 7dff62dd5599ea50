"""Reading driving media (a video file, a folder of ``frame_<i>.png`` or one image) and writing H.264 mp4.

PyAV is used for both directions: it bundles FFmpeg with libx264, so no system FFmpeg is needed.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

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


def iter_video_frames(path: Path, max_frames: Optional[int] = None, stride: int = 1) -> Iterator[np.ndarray]:
    av = _av()
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises its own error types per FFmpeg failure
        raise InputError(f"cannot open video {path}: {exc}") from exc
    with container:
        kept = 0
        for i, frame in enumerate(container.decode(video=0)):
            if i % stride:
                continue
            yield frame.to_ndarray(format="rgb24")
            kept += 1
            if max_frames is not None and kept >= max_frames:
                break


def video_fps(path: Path) -> Optional[float]:
    av = _av()
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else None


def read_frames(source: str | Path, max_frames: Optional[int] = None, stride: int = 1) -> tuple[list[np.ndarray], Optional[float]]:
    """RGB uint8 frames and the frame rate (None for images) of a video file, an image folder or one image."""
    source = Path(source)
    if stride < 1:
        raise InputError("stride must be at least 1")
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


def write_mp4(path: str | Path, frames: Sequence[np.ndarray] | np.ndarray, fps: float, crf: int = 18) -> Path:
    """H.264 (yuv420p) mp4. ``frames``: uint8 ``[H, W, 3]`` or float 0..1; odd sizes are padded by one pixel."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [_to_uint8(f) for f in frames]
    if not arrays:
        raise InputError("no frames to write")
    h, w = arrays[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2  # yuv420p needs even dimensions
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(crf)}
        for a in arrays:
            if a.shape[:2] != (h, w):
                raise InputError("all frames of a video must have the same size")
            if (ph, pw) != (h, w):
                a = np.pad(a, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _to_uint8(frame) -> np.ndarray:
    a = frame.detach().cpu().numpy() if hasattr(frame, "detach") else np.asarray(frame)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])
