"""Everything about one animation that can be checked before the work starts: settings, output, reference,
driving video and model files, with errors that say what to do (no model is loaded here)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..hjb.settings import HJBSettings
from ..loading.layout import ModelLayout
from ..settings import ConditioningSettings, SamplerSettings
from .options import AnimateOptions

log = logging.getLogger(__name__)


def required_models(opts: AnimateOptions) -> list[str]:
    return (["unet", "pose_net", "face_encoder", "svd", "dwpose_detector", "dwpose_estimator"]
            + ([] if opts.no_identity else ["insightface_root"]) + (["face_embedder"] if opts.hjb else []))


@dataclass
class AnimationPlan:
    """Everything checked before the first expensive stage."""

    width: int
    height: int
    sampler: SamplerSettings
    hjb: Optional[HJBSettings]
    conditioning: ConditioningSettings
    layout: ModelLayout
    expected_frames: Optional[int]


def plan_animation(opts: AnimateOptions, writes: bool = True) -> AnimationPlan:
    """Validate every setting and input that can be known before the work starts (no model is loaded here).

    ``writes``: this process writes the video (under torchrun only rank 0 probes the output)."""
    from ..io.video import check_frame_selection, check_writable, read_image
    from ..pipeline.conditioning import check_reference_image, round_to_64
    from ..pipeline.memory_estimate import warn_if_long
    from ..sampling.controls import TermWindow

    width, height = round_to_64(opts.width, "width"), round_to_64(opts.height, "height")
    opts.width, opts.height = width, height  # every later stage (framing, HJB boxes) sees the rounded size
    check_frame_selection(opts.max_frames, opts.frame_stride)
    if opts.decode_chunk_size < 1:
        raise InputError(f"--decode-chunk-size must be at least 1, got {opts.decode_chunk_size}")
    if opts.fps is not None and not (math.isfinite(opts.fps) and 0 < opts.fps <= 240):
        raise InputError(f"--fps must be a finite number in (0, 240], got {opts.fps}")
    # the settings model checks every value where it is made (finite, in range), before any work
    conditioning = ConditioningSettings(width, height, identity=TermWindow(opts.id_strength, opts.id_start, opts.id_end),
                                        pose=TermWindow(opts.pose_strength, opts.pose_start, opts.pose_end),
                                        first_frame_fix=opts.first_frame_fix)
    sampler = SamplerSettings(steps=opts.steps, min_guidance=opts.guidance, max_guidance=opts.guidance,
                              tile_size=opts.tile_size, tile_overlap=opts.tile_overlap, seed=opts.seed)
    hjb = None
    if opts.hjb:
        if opts.no_identity:
            raise InputError("--hjb needs the reference face: it cannot be combined with --no-identity")
        if opts.hjb_start > opts.steps - 1:
            raise InputError(f"--hjb-start {opts.hjb_start} is beyond the last step ({opts.steps - 1} of --steps "
                             f"{opts.steps}), so HJB would never run; lower --hjb-start or raise --steps")
        end = min(opts.hjb_end, opts.steps - 1)
        if end != opts.hjb_end:
            log.info("--hjb-end %d is past the last step; HJB refines steps %d..%d", opts.hjb_end, opts.hjb_start, end)
        hjb = HJBSettings(num_iterations=opts.hjb_iterations, start_step=opts.hjb_start, end_step=end,
                          mode=opts.hjb_mode, window=opts.hjb_window)
    if writes:
        check_writable(opts.out)
    check_reference_image(read_image(opts.reference))
    expected = _probe_driving(opts)
    layout = ModelLayout.from_models_dir(opts.models)
    layout.require(required_models(opts))
    if expected is not None and writes:
        warn_if_long(expected, width, height, hint="use --max-frames / --frame-stride for less")
    return AnimationPlan(width, height, sampler, hjb, conditioning, layout, expected)


def _probe_driving(opts: AnimateOptions) -> Optional[int]:
    """Opens the driving input (errors now, not after the models load) and returns the expected frame count."""
    from ..io.video import IMAGE_SUFFIXES, frame_files, video_frame_count

    src = Path(opts.driving)
    if src.is_dir():
        total = len(frame_files(src))
    elif src.suffix.lower() in IMAGE_SUFFIXES and src.is_file():
        total = 1
    elif src.is_file():
        total = video_frame_count(src)
    else:
        raise InputError(f"driving input not found: {src}")
    if total is None:
        return None
    kept = -(-total // opts.frame_stride)
    return min(kept, opts.max_frames) if opts.max_frames is not None else kept
