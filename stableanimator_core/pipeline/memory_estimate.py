"""How much RAM the per-frame data of a video takes, to warn before a long video runs out of it."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

LONG_VIDEO_FRAMES = 1000


def expected_ram_bytes(frames: int, width: int, height: int, comfy_batches: int = 0) -> int:
    """Bytes held for ``frames`` output frames: the sampler's float32 latents (about 14 copies during a step),
    the packed skeletons (~4 % of uint8 frames), the keypoints, plus ``comfy_batches`` float32 IMAGE batches at the
    output size (ComfyUI holds the driving frames, skeletons and decoded video that way)."""
    latent_frame = 4 * (height // 8) * (width // 8) * 4
    per_frame = 14 * latent_frame + 0.04 * 3 * width * height + 20_000 + comfy_batches * 3 * width * height * 4
    return int(frames * per_frame)


def warn_if_long(frames: int, width: int, height: int, comfy_batches: int = 0, hint: str = "") -> None:
    if frames >= LONG_VIDEO_FRAMES:
        gib = expected_ram_bytes(frames, width, height, comfy_batches) / 2**30
        log.warning("%d frames at %dx%d: expect about %.1f GiB of RAM for the video's data on top of the models%s",
                    frames, width, height, gib, f" ({hint})" if hint else "")
