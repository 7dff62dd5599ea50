"""Reference framing: how the reference photo is fitted to the output's aspect ratio.

* ``stretch`` (official): the image is left as it is, and every later stage squashes it to the output size
  (the official pipeline's behaviour; a portrait photo in a square video looks wider);
* ``crop``: the largest window of the output's aspect ratio, centred on the image, the detected person or
  the detected face (clamped to the image);
* ``pad``: the image in the middle of a canvas of the output's aspect ratio, filled with the colour of the
  image's border (its median), so nothing is cut off.

Framing only cuts or extends the canvas, it never resamples: the framed image keeps the photo's pixels, and
the one resize to the output size happens later, in the same place for every mode. Every stage that looks at
the reference (DWPose's reference pose and so the skeleton alignment, ArcFace and its face box, CLIP, the VAE
latent, HJB's reference face crop) must therefore be given the *framed* image; :class:`Framing` maps points
and boxes found on the original onto it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..boxes import FaceBox
from ..errors import InputError

FRAMING_MODES = ("stretch", "crop", "pad")
CROP_ANCHORS = ("center", "person", "face")


@dataclass(frozen=True)
class Framing:
    """``framed = original - origin`` in pixels: a crop has a positive origin, padding a negative one."""

    mode: str
    origin_xy: tuple[int, int]
    source_hw: tuple[int, int]
    framed_hw: tuple[int, int]

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Pixel points ``(..., 2)`` (x, y) of the original -> the framed image."""
        return np.asarray(xy, dtype=np.float64) - np.asarray(self.origin_xy, dtype=np.float64)

    def box(self, box: Optional[FaceBox]) -> Optional[FaceBox]:
        """An inclusive ``(y0, y1, x0, x1)`` box of the original -> the framed image (clipped; None if outside)."""
        if box is None:
            return None
        y0, y1, x0, x1 = box
        ox, oy = self.origin_xy
        h, w = self.framed_hw
        y0, y1, x0, x1 = max(0, y0 - oy), min(h - 1, y1 - oy), max(0, x0 - ox), min(w - 1, x1 - ox)
        return None if y1 < y0 or x1 < x0 else (y0, y1, x0, x1)


def _window(length: int, size: int, centre: float) -> int:
    """Start of a ``size`` window inside ``[0, length)`` centred on ``centre`` as far as the edges allow."""
    return int(min(max(round(centre - size / 2), 0), length - size))


def framed_size(height: int, width: int, out_height: int, out_width: int, mode: str) -> tuple[int, int]:
    """(h, w) of the framed canvas: the output's aspect ratio at the photo's resolution."""
    if mode == "stretch":
        return height, width
    wider = width * out_height > out_width * height  # the photo is wider than the output
    if mode == "crop":
        if wider:
            return height, max(1, min(width, round(height * out_width / out_height)))
        return max(1, min(height, round(width * out_height / out_width))), width
    if wider:
        return max(height, round(width * out_height / out_width)), width
    return height, max(width, round(height * out_width / out_height))


def border_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixel ring: usually the background, so padding continues it."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(ring, axis=0).round().astype(image.dtype)


def frame_reference(
    image: np.ndarray,
    out_width: int,
    out_height: int,
    mode: str = "stretch",
    anchor: str = "center",
    subject_box: Optional[FaceBox] = None,
) -> tuple[np.ndarray, Framing]:
    """Frame ``image`` ((H, W, 3) uint8) for an ``out_width`` x ``out_height`` video.

    ``anchor`` (crop only) says what the window is centred on; for ``person`` and ``face`` the caller passes
    the detected ``subject_box`` (inclusive ``(y0, y1, x0, x1)`` on ``image``). Returns the framed image and
    the :class:`Framing` that maps the original's coordinates onto it.
    """
    if mode not in FRAMING_MODES:
        raise ValueError(f"framing must be one of {FRAMING_MODES}, got {mode!r}")
    if anchor not in CROP_ANCHORS:
        raise ValueError(f"the crop anchor must be one of {CROP_ANCHORS}, got {anchor!r}")
    if mode == "crop" and anchor != "center" and subject_box is None:
        raise ValueError(f"cropping on the {anchor} needs its box")
    height, width = image.shape[:2]
    fh, fw = framed_size(height, width, out_height, out_width, mode)
    if mode == "stretch":
        return image, Framing(mode, (0, 0), (height, width), (height, width))
    if mode == "crop":
        cy, cx = (height - 1) / 2, (width - 1) / 2
        if anchor != "center":
            y0, y1, x0, x1 = subject_box
            cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        oy, ox = _window(height, fh, cy + 0.5), _window(width, fw, cx + 0.5)
        return np.ascontiguousarray(image[oy : oy + fh, ox : ox + fw]), Framing(mode, (ox, oy), (height, width),
                                                                                (fh, fw))
    top, left = (fh - height) // 2, (fw - width) // 2
    canvas = np.empty((fh, fw, image.shape[2]), dtype=image.dtype)
    canvas[:] = border_colour(image)
    canvas[top : top + height, left : left + width] = image
    return canvas, Framing(mode, (-left, -top), (height, width), (fh, fw))


def largest_box(boxes_xyxy: Sequence[Sequence[float]], height: int, width: int) -> Optional[FaceBox]:
    """The largest of a detector's ``(x0, y0, x1, y1)`` boxes as an inclusive FaceBox on the image, or None."""
    from ..boxes import box_from_xyxy

    best, best_area = None, -1.0
    for b in boxes_xyxy:
        area = float((b[2] - b[0]) * (b[3] - b[1]))
        if area > best_area:
            best, best_area = b, area
    return None if best is None else box_from_xyxy(best, height, width)


def subject_box(image: np.ndarray, anchor: str,
                find_boxes: Callable[[np.ndarray], Sequence[Sequence[float]]]) -> Optional[FaceBox]:
    """The box a ``crop`` is centred on: None for ``center``, else the largest box ``find_boxes`` (a person or
    face detector returning ``(x0, y0, x1, y1)`` pixel boxes) finds; InputError if it finds none."""
    if anchor == "center":
        return None
    box = largest_box(find_boxes(image), *image.shape[:2])
    if box is None:
        raise InputError(f"no {anchor} found in the reference image to centre the crop on: choose another crop "
                         f"anchor (center) or framing (pad, stretch)")
    return box


def person_finder(detector_path: str, provider: str = "auto") -> Callable[[np.ndarray], list]:
    """``find_boxes`` for ``person``: DWPose's YOLOX person detector (the boxes the skeleton uses)."""
    from ..loading.onnx_backend import get_session
    from ..pose.detector import detect_people

    session = get_session(detector_path, provider)
    return lambda image: list(detect_people(session, image).boxes)


def face_finder(model) -> Callable[[np.ndarray], list]:
    """``find_boxes`` for ``face``: insightface antelopev2 (an ``AntelopeV2``), fed BGR like the identity."""
    import cv2

    from ..identity.reference import detect_with_ladder

    def find(image: np.ndarray) -> list:
        faces, _ = detect_with_ladder(model, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return [f.bbox for f in faces]

    return find
