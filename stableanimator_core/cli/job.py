"""The whole job without ComfyUI: reference photo + driving video -> identity-preserving animation mp4.

Stages, as the nodes run them: reference framing -> DWPose skeletons aligned to the framed reference (and the
first-pose check) -> ArcFace identity of the reference ->
CLIP / VAE / face-token conditioning -> sampling (windows, optional HJB with face boxes from the skeletons) ->
chunked decoding -> H.264 mp4.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..devices import default_device, resolve_decode_dtype, resolve_dtype
from ..errors import InputError
from ..loading.layout import ModelLayout
from ..sampling.parallel import WorkSplit, broadcast_, broadcast_object, finish, rank_device, split_from_environment
from .options import AnimateOptions
from .plan import AnimationPlan, plan_animation, required_models

__all__ = ["AnimateOptions", "AnimationPlan", "JobModels", "JobResult", "animate_job", "job_models_key",
           "load_job_models", "plan_animation", "render_animation", "run_animation"]

log = logging.getLogger(__name__)


def _timed(opts: AnimateOptions, name: str, start: float) -> None:
    opts.timings[name] = round(time.perf_counter() - start, 3)
    log.info("%s: %.1f s", name, opts.timings[name])


def _needs_face_analysis(opts: AnimateOptions) -> bool:
    return not opts.no_identity or (opts.framing == "crop" and opts.crop_on == "face")


@dataclass
class JobModels:
    """Everything a job loads that does not depend on its inputs; a batch worker keeps it between jobs."""

    key: tuple
    layout: ModelLayout
    device: torch.device
    dtype: torch.dtype
    dwpose: Any
    face_analysis: Any  # insightface antelopev2, None when no stage needs a face
    _models: Any = None  # loading.bundle.StableAnimatorModels, loaded on first use

    def diffusion_models(self, opts: AnimateOptions):
        """UNet, PoseNet, VAE, CLIP, face encoder (and the HJB face network): loaded once, on first use, so a job
        with a bad input fails before the long load."""
        if self._models is None:
            from ..loading.components import load_models

            t = time.perf_counter()
            self._models = load_models(self.layout, self.dtype, self.device, with_face_embedder=opts.hjb)
            _timed(opts, "load", t)
        return self._models


@dataclass
class JobResult:
    path: Path
    frames: int
    identity: Any = None  # identity.score.IdentityScores of the written frames, when asked for
    timings: dict[str, float] = field(default_factory=dict)


def job_models_key(opts: AnimateOptions) -> tuple:
    """Jobs with equal keys can share one :class:`JobModels`."""
    return (str(Path(opts.models).resolve()), opts.precision, opts.device, opts.provider, opts.hjb,
            _needs_face_analysis(opts))


def load_job_models(opts: AnimateOptions, split: Optional[WorkSplit] = None) -> JobModels:
    from ..identity import load_antelopev2
    from ..pose import DWPose

    layout = ModelLayout.from_models_dir(opts.models)
    layout.require(required_models(opts))
    device = rank_device(split, opts.device) or default_device()
    dtype = resolve_dtype(opts.precision, device, hjb=opts.hjb)
    dwpose = DWPose(str(layout.dwpose_detector), str(layout.dwpose_estimator), provider=opts.provider)
    face_analysis = load_antelopev2(str(layout.insightface_root), opts.provider) if _needs_face_analysis(opts) else None
    return JobModels(job_models_key(opts), layout, device, dtype, dwpose, face_analysis)


def run_animation(opts: AnimateOptions) -> Optional[Path]:
    """The job, by one process or by each process that ``torchrun`` started (they share the denoising; rank 0
    decodes and writes). Returns the written video, None on the processes that do not write."""
    split = split_from_environment(opts.parallel, opts.device)
    try:
        result = animate_job(opts, split=split)
    finally:
        finish(split)
    return result.path if split is None or split.rank == 0 else None


def render_animation(opts: AnimateOptions) -> tuple[torch.Tensor, float]:
    """Every stage up to the decoded frames: ``([F, H, W, 3]`` float in 0..1, frame rate of the video)."""
    from ..pipeline.decode import decode_latents

    models, latents, fps, _, _ = _render(opts)
    t = time.perf_counter()
    video = decode_latents(models.vae, latents, opts.decode_chunk_size,
                           dtype=resolve_decode_dtype(opts.precision, opts.hjb))
    _timed(opts, "decode", t)
    return video, fps


def animate_job(opts: AnimateOptions, loaded: Optional[JobModels] = None, score_identity: bool = False,
                split: Optional[WorkSplit] = None, plan: Optional[AnimationPlan] = None) -> JobResult:
    """The whole job; ``loaded`` (from :func:`load_job_models` with the same key) skips loading the models.

    ``score_identity`` also scores the written frames against the reference identity (ArcFace cosine).
    ``split``: this process's share when several processes make one video; only rank 0 decodes and writes,
    a chunk at a time (the whole decoded video is never held).
    ``plan``: from :func:`plan_animation` of these options, when the caller validated them already.
    """
    from ..io.video import Mp4Writer
    from ..pipeline.decode import iter_decoded_frames

    models, latents, fps, identity, face_analysis = _render(opts, loaded, split, plan)
    if latents is None:  # not rank 0 of a split
        return JobResult(Path(opts.out), 0, None, dict(opts.timings))
    t = time.perf_counter()
    pixels: Optional[list[np.ndarray]] = [] if score_identity and identity is not None else None
    with Mp4Writer(opts.out, fps) as writer:
        for chunk in iter_decoded_frames(models.vae, latents, opts.decode_chunk_size,
                                         dtype=resolve_decode_dtype(opts.precision, opts.hjb)):
            for frame in chunk:
                writer.write(frame)
            if pixels is not None:  # what the writer encodes
                pixels.extend((chunk.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
        frames = writer.count
    _timed(opts, "decode+write", t)

    scores = None
    if pixels is not None:
        from ..identity.score import score_frames

        t = time.perf_counter()
        scores = score_frames(pixels, identity.embedding, face_analysis)
        _timed(opts, "identity score", t)
    return JobResult(Path(opts.out), frames, scores, dict(opts.timings))


def _render(opts: AnimateOptions, loaded: Optional[JobModels] = None, split: Optional[WorkSplit] = None,
            plan: Optional[AnimationPlan] = None):
    """Validation, pose, identity, loading, conditioning and sampling:
    (models, latents or None on processes other than rank 0, fps, reference identity, face model)."""
    import dataclasses

    from ..identity import reference_identity
    from ..pipeline import animate as P
    from ..pose import render_skeletons

    if plan is None:
        plan = plan_animation(opts, writes=split is None or split.rank == 0)
    if loaded is None:
        loaded = load_job_models(opts, split)
    elif loaded.key != job_models_key(opts):
        raise ValueError(f"internal: models loaded for {loaded.key}, job needs {job_models_key(opts)}")
    device, face_analysis = loaded.device, loaded.face_analysis

    reference, frames, source_fps, poses = _reference_and_poses(opts, loaded, split)

    t = time.perf_counter()
    identity = None
    if not opts.no_identity:
        from ..identity import facexlib_landmark_model

        landmarks = facexlib_landmark_model(str(opts.models / "facexlib")) if opts.no_face == "official" else None
        identity = reference_identity(reference, face_analysis, image_name=str(opts.reference), no_face=opts.no_face,
                                      channels=opts.arcface_channels, landmark_model=landmarks)
    _timed(opts, "identity", t)

    models = loaded.diffusion_models(opts)
    t = time.perf_counter()
    cond_settings = plan.conditioning
    # skeletons are drawn one at a time and packed at the generation size
    cond = P.build_conditioning(models, reference, None if identity is None else identity.embedding,
                                render_skeletons(poses), cond_settings, opts.seed)
    # every process samples rank 0's conditioning, even where preprocessing is not bit-reproducible across GPUs
    broadcast_([cond.clip_embeds, cond.face_tokens, cond.image_latents, cond.added_time_ids], split)
    _timed(opts, "conditioning", t)

    refiner, tile_size = None, opts.tile_size
    if plan.hjb is not None:
        refiner = _hjb_refiner(opts, plan, models, reference, identity, poses,
                               frames if isinstance(frames, list) else None, cond.leading_frames, split)
        tile_size = refiner.settings.tile_size_for(cond.num_frames, opts.tile_size)
    t = time.perf_counter()
    settings = dataclasses.replace(plan.sampler, tile_size=tile_size,
                                   tile_overlap=min(opts.tile_overlap, max(tile_size - 1, 0)))
    latents = P.drop_leading_frames(P.run_sampler(models, cond, settings, refiner, device=device, split=split),
                                    cond.leading_frames)
    del cond
    _timed(opts, "sampling", t)
    if split is not None and split.rank != 0:
        return models, None, 0.0, identity, face_analysis
    return models, latents, opts.fps or source_fps or 8.0, identity, face_analysis


def _reference_and_poses(opts: AnimateOptions, loaded: JobModels, split: Optional[WorkSplit]):
    """The framed reference, the driving frames (a list where HJB needs them again, else a stream), their frame
    rate and the aligned DWPose keypoints (rank 0's on every process of a split)."""
    from ..io.video import iter_driving_frames, read_image
    from ..pipeline.framing import face_finder, frame_reference, person_finder, subject_box
    from ..pose import check_first_pose, extract_poses

    t = time.perf_counter()
    # every stage below sees the framed reference: pose alignment, face box, CLIP, latent, HJB crop
    reference = read_image(opts.reference)
    if opts.framing == "crop" and opts.crop_on != "center":
        find = (person_finder(str(loaded.layout.dwpose_detector), opts.provider) if opts.crop_on == "person"
                else face_finder(loaded.face_analysis))
        box = subject_box(reference, opts.crop_on, find)
    else:
        box = None
    reference, _ = frame_reference(reference, opts.width, opts.height, opts.framing,
                                   opts.crop_on if box else "center", box)
    frames, source_fps = iter_driving_frames(opts.driving, opts.max_frames, opts.frame_stride)
    if opts.hjb and opts.hjb_boxes != "skeleton":
        frames = list(frames)  # face boxes found on the driving frames themselves: they are needed again for HJB
    # otherwise frames are decoded, posed and dropped one at a time: only the keypoints of the video are kept
    poses = extract_poses(reference, frames, loaded.dwpose, align=opts.align, missing=opts.missing,
                          person=opts.person, min_keypoints=opts.min_keypoints)
    # every process draws rank 0's skeletons (and HJB boxes), even where DWPose is not bit-reproducible across GPUs
    poses = broadcast_object(poses, split)
    check = check_first_pose(poses, opts.align)
    (log.warning if check.warning else log.info)("%s", check.message)
    _timed(opts, "pose", t)
    return reference, frames, source_fps, poses


def _hjb_refiner(opts: AnimateOptions, plan: AnimationPlan, models, reference: np.ndarray, identity, poses, frames,
                 leading_frames: int = 0, split: Optional[WorkSplit] = None):
    from ..boxes import box_from_xyxy
    from ..hjb.sampler_hook import HJBStepHook
    from ..identity import load_antelopev2
    from ..identity.driving_faces import official_face_box
    from ..pose.face_masks import sequence_face_boxes

    h, w = reference.shape[:2]
    if opts.hjb_boxes == "official":  # face_mask_extraction.py's mask of the reference (every face, or all)
        ref_box = official_face_box(identity.face_boxes, h, w)
    else:
        ref_box = None if identity.box is None else box_from_xyxy(identity.box, h, w)
    if ref_box is None:
        raise InputError(f"the reference face box {identity.box} lies outside the image or no face was found; "
                         "HJB needs the reference face")
    face_analysis = None
    if opts.hjb_boxes != "skeleton":
        face_analysis = load_antelopev2(str(plan.layout.insightface_root), opts.provider)
    targets = sequence_face_boxes(poses, plan.height, plan.width, opts.hjb_boxes, frames, face_analysis)
    targets = targets[:1] * leading_frames + targets  # the first-frame fix's extra frame has the first face
    return HJBStepHook.build(models.vae, models.face_embedder, reference, ref_box, targets, plan.hjb, split=split)
