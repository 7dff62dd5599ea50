"""Fitting the driving skeletons to the reference body.

``global`` is StableAnimator's rescale (``DWPose/skeleton_extraction.py``, from MimicMotion), reproduced
exactly: on normalised coordinates, a least-squares line ``y_ref = a * y_drv + b_y`` over the 14 head/torso/leg
joints the reference shows, pooled over every driving frame for which DWPose returned exactly one pose (a frame
where the detector found nobody counts: the pose model then ran on the whole image, and the official tool fits on
that pose too); the same ``a`` for x (the
official aspect correction ``h / w / h * w`` is kept, it is 1 up to rounding) and ``b_x`` = the mean x offset.
The map is applied to every point of every frame.
Which frames take part is decided on what DWPose returned, never on what is drawn: a frame with several people
stays out of the fit even when only one of them is drawn, and a frame the no-person policy fills (a repeated pose)
adds nothing, so the fit, and with it every one-person frame, is the official one whatever the drawing options. Because it works on normalised coordinates it stretches
poses anisotropically when the driving video and the reference have different aspect ratios, and it cannot
fix limb proportions (users report it sometimes hurts, StableAnimator issue #97).

``limbs`` keeps the driving joint angles and gives every bone the reference's length: per bone, the scale
is ``reference length / median driving length`` (the median over frames keeps foreshortening, e.g. an arm
pointing at the camera stays short), applied to the driving bone vector in pixels, walking the OpenPose tree
from the neck, whose position comes from the global fit. Hands follow the wrists with the forearm's scale,
the face follows the nose with the head's scale. Bones the reference does not show use the global scale.

``none`` draws the driving poses as detected (normalised coordinates, so they fill the reference canvas).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import NoPersonError
from .keypoints import SCORE_THRESHOLD, PoseFrame

log = logging.getLogger(__name__)

ALIGN_MODES = ("global", "limbs", "none")
MIN_SCALE = 1e-3
# nose, neck, shoulders, hips, knees, ankles, eyes, ears (OpenPose indices), as the official tool picks them
FIT_JOINTS = [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
NECK, NOSE, R_ELBOW, R_WRIST, L_ELBOW, L_WRIST = 1, 0, 3, 4, 6, 7
# (parent, child) in walking order from the neck; the drawn OpenPose limbs form this tree
BONES = [
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
]


@dataclass
class Alignment:
    """Aligned frames (normalised to the reference canvas; None where the input was None) and, per frame,
    the ``(scale, offset)`` pair (each shape (2,), normalised units) that maps that frame's driving face points
    onto the aligned ones, for mapping other face boxes (e.g. from insightface) the same way."""

    frames: list[Optional[PoseFrame]]
    face_maps: list[Optional[tuple[np.ndarray, np.ndarray]]]
    scale: np.ndarray
    offset: np.ndarray


def reference_fit_joints(reference: PoseFrame) -> list[int]:
    """The fit joints the reference's first person shows (score > 0.3)."""
    if reference.num_people == 0:
        return []
    return [j for j in FIT_JOINTS if reference.body_scores[0, j] > SCORE_THRESHOLD]


def fit_global(reference: PoseFrame, frames: Sequence[Optional[PoseFrame]]) -> tuple[np.ndarray, np.ndarray]:
    """The official ``(a, b)`` (each (2,)) mapping normalised driving points to normalised reference points.

    Only frames with exactly one person take part (pass DWPose's raw output, not the drawn choice). Degenerate data (no usable frame, all joints on one
    row) gives a warning and a translation-only or identity map instead of NaN.
    """
    joints = reference_fit_joints(reference)
    if not joints:
        raise NoPersonError(
            "the reference image shows no body keypoints (nose, neck, shoulders, hips, knees, ankles, eyes or "
            "ears) to align the driving poses to. Use a reference photo where the person's body is visible, or "
            "turn alignment off (align = none)."
        )
    ref = reference.body[0, joints]
    single = [f.body[0, joints] for f in frames if f is not None and f.num_people == 1]
    if not single:
        log.warning("no driving frame with exactly one person: the driving poses are not rescaled")
        return np.array([1.0, 1.0]), np.array([0.0, 0.0])
    det = np.stack(single)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a rank-deficient fit is detected below, not printed
        (a_y, b_y), _, rank, _, _ = np.polyfit(det[:, :, 1].flatten(), np.tile(ref[:, 1], len(det)), 1, full=True)
    h, w = reference.height, reference.width
    # the official aspect term: the reference size cancels (h / w / h * w), kept for bit-identical results
    a_x = a_y / (h / w / h * w)
    b_x = np.mean(np.tile(ref[:, 0], len(det)) - det[:, :, 0].flatten() * a_x)
    # a (near) zero slope would collapse every skeleton onto one point: no reference/driving size ratio is that far off
    if rank < 2 or not np.all(np.isfinite([a_y, b_y, a_x, b_x])) or a_y < MIN_SCALE:
        log.warning("the driving poses give no usable vertical spread; aligning by translation only")
        a = np.array([1.0, 1.0])
        return a, np.mean(np.tile(ref, (len(det), 1)) - det.reshape(-1, 2), axis=0)
    return np.array([a_x, a_y]), np.array([b_x, b_y])


def _apply(frame: PoseFrame, a: np.ndarray, b: np.ndarray, ref: PoseFrame) -> PoseFrame:
    return frame.with_points(frame.body * a + b, frame.face * a + b, frame.hands * a + b, ref.width, ref.height)


def _visible(scores: np.ndarray, *joints: int) -> bool:
    return all(scores[j] > SCORE_THRESHOLD for j in joints)


def _bone_scales(
    reference: PoseFrame, frames: Sequence[Optional[PoseFrame]], fallback: float
) -> dict[tuple[int, int], float]:
    """Per bone: reference length / median driving length (pixels), or ``fallback`` if either is unknown."""
    ref_px = reference.body[0] * [reference.width, reference.height]
    scales = {}
    for bone in BONES:
        p, c = bone
        lengths = [
            np.linalg.norm((f.body[0, c] - f.body[0, p]) * [f.width, f.height])
            for f in frames if f is not None and f.num_people == 1 and _visible(f.body_scores[0], p, c)
        ]
        ref_len = np.linalg.norm(ref_px[c] - ref_px[p]) if _visible(reference.body_scores[0], p, c) else 0.0
        drv_len = float(np.median(lengths)) if lengths else 0.0
        scales[bone] = ref_len / drv_len if ref_len > 0 and drv_len > 1e-6 else fallback
    return scales


def _retarget_person(frame: PoseFrame, n: int, glob: PoseFrame, scales: dict, ref: PoseFrame):
    """One person's limb-retargeted body, face, hands (normalised to the reference) and face map."""
    drv = np.array([frame.width, frame.height], float)
    out_px = np.array([ref.width, ref.height], float)
    d_body = frame.body[n] * drv  # driving pixels
    g_body = glob.body[n] * out_px  # globally aligned, reference pixels
    scores = frame.body_scores[n]
    body = g_body.copy()
    for p, c in BONES:
        if _visible(scores, p, c):
            body[c] = body[p] + scales[(p, c)] * (d_body[c] - d_body[p])
        else:  # an unseen bone: move the child with its parent
            body[c] = g_body[c] + (body[p] - g_body[p])

    def follow(points_drv: np.ndarray, points_glob: np.ndarray, anchor: int, scale: float, visible: bool):
        if visible:
            return body[anchor] + scale * (points_drv - d_body[anchor]), scale
        return points_glob + (body[anchor] - g_body[anchor]), None

    face, face_scale = follow(frame.face[n] * drv, glob.face[n] * out_px, NOSE, scales[(NECK, NOSE)],
                              _visible(scores, NOSE))
    left, _ = follow(frame.hands[n, 0] * drv, glob.hands[n, 0] * out_px, L_WRIST, scales[(L_ELBOW, L_WRIST)],
                     _visible(scores, L_WRIST))
    right, _ = follow(frame.hands[n, 1] * drv, glob.hands[n, 1] * out_px, R_WRIST, scales[(R_ELBOW, R_WRIST)],
                      _visible(scores, R_WRIST))
    face_map = None
    if face_scale is not None:
        # face_px = nose_out + s * (p_drv_px - nose_drv_px), written in normalised units
        face_map = (face_scale * drv / out_px, (body[NOSE] - face_scale * d_body[NOSE]) / out_px)
    return body / out_px, face / out_px, np.stack([left, right]) / out_px, face_map


def align_poses(
    reference: PoseFrame,
    frames: Sequence[Optional[PoseFrame]],
    mode: str = "global",
    fit_frames: Optional[Sequence[Optional[PoseFrame]]] = None,
) -> Alignment:
    """Align driving ``frames`` (None = no pose) to the ``reference`` pose (its first person is used).

    ``fit_frames`` (default: ``frames``) are the poses the fit is computed from: DWPose's raw output per driving
    frame, so that which people are drawn cannot change the map.
    """
    fit_frames = frames if fit_frames is None else fit_frames
    if mode not in ALIGN_MODES:
        raise ValueError(f"align mode must be one of {ALIGN_MODES}, got {mode!r}")
    if mode == "none":
        one, zero = np.array([1.0, 1.0]), np.array([0.0, 0.0])
        out = [None if f is None else _apply(f, one, zero, reference) for f in frames]
        return Alignment(out, [None if f is None else (one, zero) for f in frames], one, zero)
    a, b = fit_global(reference, fit_frames)
    glob = [None if f is None else _apply(f, a, b, reference) for f in frames]
    if mode == "global" or all(f is None for f in frames):
        return Alignment(glob, [None if f is None else (a, b) for f in frames], a, b)
    return _align_limbs(reference, frames, fit_frames, glob, a, b)


def _align_limbs(reference: PoseFrame, frames, fit_frames, glob, a: np.ndarray, b: np.ndarray) -> Alignment:
    first = next(f for f in frames if f is not None)
    # the global map in pixels; its geometric mean is the scale for bones the data cannot measure
    px_scale = a * [reference.width / first.width, reference.height / first.height]
    scales = _bone_scales(reference, fit_frames, float(np.sqrt(abs(px_scale[0] * px_scale[1]))))
    out, maps = [], []
    for f, g in zip(frames, glob):
        if f is None:
            out.append(None)
            maps.append(None)
            continue
        people = [_retarget_person(f, n, g, scales, reference) for n in range(f.num_people)]
        if not people:
            out.append(g)
            maps.append((a, b))
            continue
        out.append(f.with_points(np.stack([p[0] for p in people]), np.stack([p[1] for p in people]),
                                 np.stack([p[2] for p in people]), reference.width, reference.height))
        maps.append(people[0][3] or (a, b))
    return Alignment(out, maps, a, b)
