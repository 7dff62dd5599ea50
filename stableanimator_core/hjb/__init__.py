"""HJB-based face optimisation (StableAnimator's identity refinement inside the Euler step).

The sampler builds one ``FaceRefiner`` per generation and, at every step where ``settings.is_refined(i)``,
replaces x0 by ``refiner.refine(x0, settings.learning_rate(i, num_steps))[0]`` before the Euler update.

Modes (``HJBSettings.mode``):
  * ``faithful`` (default): the official computation; reproduces the parity fixture's HJB runs.
  * ``memory_bounded``: exact too (same gradient to ~3e-7 relative on the fixture), loss and backward per decode
    chunk with per-layer checkpointing, so memory stays flat in the number of frames.
  * ``fast``: an approximation. bf16/fp16 autocast for the decoder and face net (fp16 with loss scaling), fp32
    latents and Adam state, and only a latent window around each chunk's faces is decoded. The default margin is
    the decoder's convolutional receptive radius (18 latent px for SVD-xt), so zero padding at the window edge
    cannot reach a face pixel through the convolutions; the mid-block attention and the GroupNorm statistics then
    see the window instead of the whole frame, and latents outside the window are left unchanged (the official
    update moves every latent by about lr per iteration, face or not).
"""

from .decode import conv_receptive_radius, decode_chunk_differentiable, to_face_range
from .faces import (
    FACE_SIZE,
    crop_face,
    image_to_face_range,
    reference_box,
    reference_face_embedding,
    target_boxes_from_masks,
)
from .refine import FaceRefiner
from .settings import HJB_MODES, HJB_WINDOWS, HJBMode, HJBSettings

__all__ = [
    "FACE_SIZE", "FaceRefiner", "HJBMode", "HJBSettings", "HJB_MODES", "HJB_WINDOWS", "conv_receptive_radius", "crop_face",
    "decode_chunk_differentiable", "image_to_face_range", "reference_box", "reference_face_embedding",
    "target_boxes_from_masks", "to_face_range",
]
