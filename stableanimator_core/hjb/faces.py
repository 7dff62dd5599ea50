"""Face boxes and 112x112 face crops for the HJB loss, as the official code makes them.

Official behaviour reproduced here: boxes are inclusive ``(y_min, y_max, x_min, x_max)`` taken from masks as-is,
crops are ``image[:, y0:y1+1, x0:x1+1]`` resized with bilinear ``align_corners=False`` to 112x112 (no aspect
preservation, no landmark alignment), and images are RGB scaled to [-1, 1] with ``/255, -0.5, /0.5``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..boxes import FaceBox, boxes_from_masks, box_from_mask, rescale_box
from ..errors import InputError, NoFaceError

FACE_SIZE = 112


def check_box(box: FaceBox, height: int, width: int, what: str = "face box") -> FaceBox:
    """``box`` as ints, or an InputError if it is not a non-empty inclusive box inside ``height x width``."""
    y0, y1, x0, x1 = (int(v) for v in box)
    if not (0 <= y0 <= y1 < height and 0 <= x0 <= x1 < width):
        raise InputError(
            f"{what} (y {y0}..{y1}, x {x0}..{x1}) does not lie inside the {width}x{height} image; "
            "face masks must cover the same picture as the image they describe"
        )
    return y0, y1, x0, x1


def _masks_3d(masks: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    # ComfyUI MASK is [B, H, W]; accept a single [H, W] mask too
    if masks.ndim == 2:
        return masks[None]
    if masks.ndim != 3:
        raise InputError(f"face masks must be [frames, H, W] (a ComfyUI MASK), got shape {tuple(masks.shape)}")
    return masks


def target_boxes_from_masks(
    masks: torch.Tensor | np.ndarray, num_frames: int, height: int, width: int, threshold: float = 0.5
) -> list[Optional[FaceBox]]:
    """One box per generated frame from a mask batch at any resolution, rescaled to ``height x width``.

    A single mask applies to every frame; an empty mask gives ``None`` (that frame is left out of the loss).
    """
    masks = _masks_3d(masks)
    count = int(masks.shape[0])
    if count not in (1, num_frames):
        raise InputError(f"got {count} face masks for {num_frames} frames; give one mask per frame (or a single mask)")
    src_hw = (int(masks.shape[1]), int(masks.shape[2]))
    boxes = [rescale_box(b, src_hw, (height, width)) for b in boxes_from_masks(masks, threshold)]
    return boxes * num_frames if count == 1 else boxes


def reference_box(
    image_hw: tuple[int, int], box: Optional[FaceBox] = None, mask: torch.Tensor | np.ndarray | None = None,
    threshold: float = 0.5,
) -> FaceBox:
    """The reference face box on the original-size reference image, from a box or a mask (any resolution)."""
    if box is None and mask is None:
        raise InputError("the HJB face optimisation needs a reference face box or mask")
    if box is None:
        m = _masks_3d(mask)[0]
        found = box_from_mask(m, threshold)
        if found is None:
            raise NoFaceError("the reference face mask is empty; draw or detect the face on the reference image")
        box = rescale_box(found, (int(m.shape[0]), int(m.shape[1])), image_hw)
    return check_box(box, image_hw[0], image_hw[1], "reference face box")


def image_to_face_range(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """An RGB image ``[H, W, 3]`` / ``[1, H, W, 3]`` (uint8 0..255 or float 0..1) -> ``[1, 3, H, W]`` in [-1, 1].

    uint8 goes through ``/255`` first; a float image is taken to be that quotient already (a ComfyUI IMAGE), so
    both give the official values bit for bit.
    """
    # copy: a numpy image may be read-only (PIL/ComfyUI buffers), which torch warns about
    t = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.array(image, copy=True))
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise InputError(f"expected one reference image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3 or t.shape[-1] != 3:
        raise InputError(f"the reference image must be RGB [H, W, 3], got shape {tuple(t.shape)}")
    t = t.permute(2, 0, 1).unsqueeze(0)
    t = t.float() / 255 if t.dtype == torch.uint8 else t.float()
    return (t - 0.5) / 0.5


def crop_face(image: torch.Tensor, box: FaceBox, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Crop inclusive ``box`` from a ``[3, H, W]`` image whose top-left pixel is at ``origin`` -> ``[1, 3, 112, 112]``."""
    y0, y1, x0, x1 = box
    oy, ox = origin
    patch = image[:, y0 - oy : y1 - oy + 1, x0 - ox : x1 - ox + 1].unsqueeze(0)
    return F.interpolate(patch, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", align_corners=False)


@torch.no_grad()
def reference_face_embedding(
    face_net: torch.nn.Module, image: torch.Tensor | np.ndarray, box: FaceBox
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embedding [1, D], crop [1, 3, 112, 112])`` of the reference face, cropped at the image's original size."""
    x = image_to_face_range(image)
    box = check_box(box, x.shape[-2], x.shape[-1], "reference face box")
    param = next(face_net.parameters())
    crop = crop_face(x[0], box).to(device=param.device, dtype=param.dtype)
    return face_net(crop).float(), crop


def union_box(boxes: Sequence[Optional[FaceBox]]) -> Optional[FaceBox]:
    """The smallest box containing every given box (None if there are none)."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return (min(b[0] for b in present), max(b[1] for b in present),
            min(b[2] for b in present), max(b[3] for b in present))
