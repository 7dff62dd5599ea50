"""Face boxes: the one box convention shared by preprocessing, HJB and the nodes.

A box is ``(y_min, y_max, x_min, x_max)`` in pixels, **inclusive** on both ends, as the official code
derives it from a mask (``torch.where(mask == 1)``). ``None`` stands for "no face in this frame".
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

FaceBox = tuple[int, int, int, int]


def box_from_mask(mask: np.ndarray | torch.Tensor, threshold: float = 0.5) -> Optional[FaceBox]:
    """Bounding box of the pixels above ``threshold`` in a 2-D mask, or None if there are none.

    Masks are floats in 0..1 (ComfyUI MASK) or uint8 0..255; the official masks are exactly 255
    inside the face, so any threshold in (0, 1) gives the official box.
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a face mask must be 2-D (H, W), got shape {tuple(m.shape)}")
    if m.dtype == np.uint8:
        m = m.astype(np.float32) / 255.0
    ys, xs = np.nonzero(m > threshold)
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def boxes_from_masks(masks: np.ndarray | torch.Tensor, threshold: float = 0.5) -> list[Optional[FaceBox]]:
    """One box (or None) per mask of a ``[F, H, W]`` batch."""
    return [box_from_mask(masks[i], threshold) for i in range(masks.shape[0])]


def rescale_box(box: Optional[FaceBox], src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Optional[FaceBox]:
    """Map an inclusive pixel box from an image of size ``src_hw`` to one of size ``dst_hw``.

    Pixel edges are scaled (a box covering pixels a..b covers the interval [a, b+1)), so a box that
    covers a whole source image covers the whole target image. The result is clipped and never empty.
    """
    if box is None:
        return None
    (sh, sw), (dh, dw) = src_hw, dst_hw
    if (sh, sw) == (dh, dw):
        return box
    y0, y1, x0, x1 = box
    sy, sx = dh / sh, dw / sw
    ny0 = int(np.floor(y0 * sy))
    ny1 = int(np.ceil((y1 + 1) * sy)) - 1
    nx0 = int(np.floor(x0 * sx))
    nx1 = int(np.ceil((x1 + 1) * sx)) - 1
    ny0, nx0 = max(0, min(ny0, dh - 1)), max(0, min(nx0, dw - 1))
    ny1, nx1 = max(ny0, min(ny1, dh - 1)), max(nx0, min(nx1, dw - 1))
    return ny0, ny1, nx0, nx1


def masks_from_boxes(boxes: Sequence[Optional[FaceBox]], height: int, width: int) -> torch.Tensor:
    """A ``[F, H, W]`` float mask batch with 1.0 inside each box (all zero where the box is None)."""
    out = torch.zeros(len(boxes), height, width, dtype=torch.float32)
    for i, b in enumerate(boxes):
        if b is not None:
            y0, y1, x0, x1 = b
            out[i, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return out


def box_from_xyxy(xyxy, height: int, width: int) -> Optional[FaceBox]:
    """A detector's ``(x0, y0, x1, y1)`` pixel box (float, exclusive-ish edges) as an inclusive, clipped FaceBox."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    y_min, x_min = max(0, int(np.floor(y0))), max(0, int(np.floor(x0)))
    y_max, x_max = min(height - 1, int(np.ceil(y1)) - 1), min(width - 1, int(np.ceil(x1)) - 1)
    if y_max < y_min or x_max < x_min:
        return None
    return y_min, y_max, x_min, x_max
