"""Driving frames + reference image -> aligned DWPose skeletons (StableAnimator's skeleton_extraction.py).

What differs from the official tool, on purpose and only where it would crash or mislead:

* a frame where the detector finds nobody (the official tool then runs the pose model on the whole image
  and draws whatever comes out) or whose chosen person shows fewer than ``min_keypoints`` body joints is
  "missing" and handled by ``missing``: ``empty`` (black skeleton), ``repeat`` (the previous frame's pose;
  leading missing frames take the first found one), ``error`` (NoPersonError naming the frame) or
  ``whole_image`` (the official behaviour: draw the whole-image pose);
* with several people, ``person`` picks one: ``largest`` (biggest detector box, the default),
  ``confident`` (highest mean body-joint score), or ``all`` (the official behaviour: everyone is drawn).

None of these choices changes the alignment fit, which is computed on DWPose's raw output by the official rule
(``alignment.fit_global``). So with default options every frame the official tool draws the same way (one
detected person; no person, which both draw empty when the whole-image pose is below the score threshold) is
the official skeleton pixel for pixel, and ``person=all, missing=whole_image, min_keypoints=0`` (the
``OFFICIAL_POSE_OPTIONS``) reproduces the official tool on every frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from ..errors import NoPersonError
from .alignment import ALIGN_MODES, align_poses
from .drawing import draw_pose
from .keypoints import SCORE_THRESHOLD, PoseFrame

log = logging.getLogger(__name__)

MISSING_POLICIES = ("empty", "repeat", "error", "whole_image")
PERSON_CHOICES = ("largest", "confident", "all")
# DWPose/skeleton_extraction.py: everyone drawn, the whole-image pose drawn where the detector finds nobody,
# no keypoint minimum
OFFICIAL_POSE_OPTIONS = {"person": "all", "missing": "whole_image", "min_keypoints": 0}


@dataclass
class PoseSequence:
    """The result of ``extract_poses``; everything a node or the CLI needs downstream.

    ``aligned[i]`` is output frame i's pose, normalised to the reference canvas (zero people = empty frame);
    ``source[i]`` the driving frame it comes from (None for an empty frame; a repeat points at the frame it
    repeats); ``face_maps[i]`` maps driving-frame face points of ``source[i]`` onto the aligned face;
    ``raw`` keeps what DWPose found on each driving frame.
    """

    reference: PoseFrame
    raw: list[PoseFrame]
    aligned: list[PoseFrame]
    source: list[Optional[int]]
    face_maps: list[Optional[tuple[np.ndarray, np.ndarray]]]
    width: int
    height: int


def choose_person(frame: PoseFrame, how: str = "largest") -> Optional[int]:
    """Index of the person to animate, or None if there is nobody."""
    if frame.num_people == 0:
        return None
    if how == "all":
        return 0  # the official reference person: the best detection
    if how == "confident" or frame.boxes is None or len(frame.boxes) != frame.num_people:
        return int(np.argmax(frame.body_scores.mean(axis=1)))  # keypoints without boxes: by confidence
    areas = (frame.boxes[:, 2] - frame.boxes[:, 0]) * (frame.boxes[:, 3] - frame.boxes[:, 1])
    return int(np.argmax(areas))


def _select(frame: PoseFrame, person: str, min_keypoints: int, missing: str = "empty") -> Optional[PoseFrame]:
    """The people of ``frame`` to keep, or None if the frame counts as missing."""
    if frame.num_people == 0 or (not frame.detected and missing != "whole_image"):
        return None
    if person == "all":
        keep = [n for n in range(frame.num_people) if frame.visible_body_joints(n) >= min_keypoints]
        return frame.select(keep) if keep else None
    n = choose_person(frame, person)
    return frame.select([n]) if frame.visible_body_joints(n) >= min_keypoints else None


def _summary(indices: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def _reference_person(pose: PoseFrame, person: str, align: str) -> PoseFrame:
    n = choose_person(pose, person)
    if n is not None and pose.visible_body_joints(n) > 0:
        if not pose.detected:
            # the official tool keeps the whole-image pose when the detector misses; so do we, for the reference
            log.warning("no person box found in the reference image; using the pose found on the whole image")
        return pose.select([n])
    if align != "none":
        raise NoPersonError(
            "no person found in the reference image, so the driving poses cannot be aligned to it. Use a "
            "reference photo showing the person's body, or turn alignment off (align = none)."
        )
    return PoseFrame.empty(pose.width, pose.height)


def _missing_error(index: int, min_keypoints: int) -> NoPersonError:
    return NoPersonError(
        f"driving frame {index}: no person found (or fewer than {min_keypoints} body keypoints with score "
        f"> {SCORE_THRESHOLD}). Choose missing = empty or repeat to go on without it."
    )


def _check_options(align: str, missing: str, person: str) -> None:
    for value, choices, name in ((align, ALIGN_MODES, "align"), (missing, MISSING_POLICIES, "missing"),
                                 (person, PERSON_CHOICES, "person")):
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def sequence_from_poses(
    reference_pose: PoseFrame,
    driving_poses: list[PoseFrame],
    align: str = "global",
    missing: str = "empty",
    person: str = "largest",
    min_keypoints: int = 1,
) -> PoseSequence:
    """Choose, align and fill already-detected poses (e.g. ``POSE_KEYPOINT`` from another node pack)."""
    _check_options(align, missing, person)
    if not driving_poses:
        raise NoPersonError("the driving video has no frames")
    reference = _reference_person(reference_pose, person, align)
    chosen = [_select(p, person, min_keypoints, missing) for p in driving_poses]
    absent = [i for i, c in enumerate(chosen) if c is None]
    crowded = [i for i, p in enumerate(driving_poses) if p.detected and p.num_people > 1]
    if absent and missing == "error":
        raise _missing_error(absent[0], min_keypoints)
    if len(absent) == len(chosen):
        raise NoPersonError(f"no person found in any of the {len(chosen)} driving frames")
    if crowded:
        rule = {"largest": "the largest", "confident": "the most confident", "all": "everyone"}[person]
        log.info("%d driving frame(s) show several people (%s); drawing %s", len(crowded), _summary(crowded), rule)
    if absent:
        log.warning("%d driving frame(s) without a usable person (%s): %s", len(absent), _summary(absent),
                    "filled with the nearest earlier pose" if missing == "repeat" else "left empty")
    # the fit sees what DWPose returned, never the choice of what to draw (see alignment.fit_global)
    result = align_poses(reference, chosen, align, fit_frames=driving_poses)
    return _fill_missing(reference, driving_poses, result.frames, result.face_maps, missing)


def extract_poses(
    reference_image: np.ndarray,
    driving_frames: Iterable[np.ndarray],
    model: Callable[[np.ndarray], PoseFrame],
    align: str = "global",
    missing: str = "empty",
    person: str = "largest",
    min_keypoints: int = 1,
    on_frame: Optional[Callable[[int], None]] = None,
) -> PoseSequence:
    """Detect, choose, align. Images are (H, W, 3) uint8 RGB; ``model`` is a ``DWPose`` (or any callable
    returning a ``PoseFrame``). Frames are consumed one at a time, so a video can be streamed."""
    _check_options(align, missing, person)
    reference_pose = model(reference_image)
    _reference_person(reference_pose, person, align)  # fail before the (long) driving pass
    raw = []
    for i, image in enumerate(driving_frames):
        pose = model(image)
        if missing == "error" and _select(pose, person, min_keypoints, missing) is None:
            raise _missing_error(i, min_keypoints)  # fail fast rather than after the whole video
        raw.append(pose)
        if on_frame is not None:
            on_frame(i)
    return sequence_from_poses(reference_pose, raw, align, missing, person, min_keypoints)


def _fill_missing(reference: PoseFrame, raw, frames, maps, missing: str) -> PoseSequence:
    aligned, source, face_maps = [], [], []
    first = next(i for i, f in enumerate(frames) if f is not None)
    last: Optional[int] = None
    for i, f in enumerate(frames):
        if f is not None:
            last = i
        take = i if f is not None else (None if missing != "repeat" else (last if last is not None else first))
        if take is None:
            aligned.append(PoseFrame.empty(reference.width, reference.height))
        else:
            aligned.append(frames[take])
        source.append(take)
        face_maps.append(None if take is None else maps[take])
    return PoseSequence(reference, raw, aligned, source, face_maps, reference.width, reference.height)


def render_skeletons(sequence: PoseSequence) -> Iterator[np.ndarray]:
    """The skeleton image of every output frame at the reference size, (H, W, 3) uint8 RGB, one at a time."""
    for frame in sequence.aligned:
        yield draw_pose(frame, sequence.height, sequence.width)


def render_skeletons_at(sequence: PoseSequence, width: int, height: int) -> Iterator[np.ndarray]:
    """Every skeleton at the generation size ``width`` x ``height``, uint8, one at a time.

    Each frame is drawn at the reference size (as the official code draws it) and resized at once with the
    conditioning's own resize, so the result is bit-identical to resizing later, while only one reference-size
    frame exists at a time (a 12-MP reference makes each one 36 MB).
    """
    from PIL import Image

    from ..pipeline.conditioning import resize_rgb

    for image in render_skeletons(sequence):
        yield image if image.shape[:2] == (height, width) else resize_rgb(image, width, height, Image.BICUBIC)
