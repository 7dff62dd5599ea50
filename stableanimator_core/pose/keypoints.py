"""The pose container shared by detection, alignment and drawing, and its OpenPose-JSON form.

``PoseFrame`` keeps DWPose's normalised coordinates (x / width, y / height of the image the pose refers to)
in OpenPose order: 18 body joints (COCO-18 with the neck at 1), 68 face points, and a left and a right hand
of 21 points each, every point with its score.

The JSON form is ComfyUI's ``POSE_KEYPOINT`` as comfyui_controlnet_aux writes it, one dict per frame::

    {"people": [{"pose_keypoints_2d": [x, y, c, ...] (18 points),
                 "face_keypoints_2d": 70 points (68 + the two eyes, as controlnet_aux pads them) or None,
                 "hand_left_keypoints_2d": 21 points or None, "hand_right_keypoints_2d": 21 points or None}],
     "canvas_width": W, "canvas_height": H}

with x, y in canvas pixels and c = 1.0 for a point with score >= 0.3, ``0, 0, 0`` otherwise (controlnet_aux's
reader drops points with c < 1). That loses the real scores DWPose's drawing uses, so we add one key per
person, ``"dwpose_raw"``, with every point's normalised position and raw score (so that the JSON round-trips
bit for bit); our reader prefers it, other readers ignore it. Reading foreign keypoints, c is taken as the
score, and pixel vs. normalised coordinates are told apart the way controlnet_aux does (all coordinates
within [0, 1] means normalised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError

NUM_BODY, NUM_FACE, NUM_HAND = 18, 68, 21
SCORE_THRESHOLD = 0.3  # DWPose's visibility threshold
RAW_KEY = "dwpose_raw"


@dataclass
class PoseFrame:
    """Poses of the people in one frame, coordinates normalised to the frame's ``width`` x ``height``.

    ``boxes`` are the detector's person boxes in pixels (None when the poses did not come from the detector);
    ``detected`` is False when the detector found nobody and the pose model ran on the whole image.
    """

    body: np.ndarray  # (N, 18, 2)
    body_scores: np.ndarray  # (N, 18)
    face: np.ndarray  # (N, 68, 2)
    face_scores: np.ndarray  # (N, 68)
    hands: np.ndarray  # (N, 2, 21, 2): [left, right]
    hand_scores: np.ndarray  # (N, 2, 21)
    width: int
    height: int
    boxes: Optional[np.ndarray] = None
    detected: bool = True

    @property
    def num_people(self) -> int:
        return int(self.body.shape[0])

    @classmethod
    def empty(cls, width: int, height: int) -> "PoseFrame":
        return cls(
            np.zeros((0, NUM_BODY, 2)), np.zeros((0, NUM_BODY)), np.zeros((0, NUM_FACE, 2)), np.zeros((0, NUM_FACE)),
            np.zeros((0, 2, NUM_HAND, 2)), np.zeros((0, 2, NUM_HAND)), int(width), int(height),
            boxes=np.zeros((0, 4)), detected=False,
        )

    def select(self, indices: Sequence[int]) -> "PoseFrame":
        """The same frame with only the people at ``indices``."""
        idx = np.asarray(list(indices), dtype=np.int64)
        # a whole-image pose (nobody detected) has no box to carry along
        boxes = self.boxes[idx] if self.boxes is not None and len(self.boxes) == self.num_people else None
        return PoseFrame(
            self.body[idx], self.body_scores[idx], self.face[idx], self.face_scores[idx], self.hands[idx],
            self.hand_scores[idx], self.width, self.height, boxes=boxes, detected=self.detected,
        )

    def with_points(
        self, body: np.ndarray, face: np.ndarray, hands: np.ndarray, width: int, height: int
    ) -> "PoseFrame":
        """A copy with new coordinates (same scores), e.g. after alignment to another canvas."""
        return PoseFrame(
            body, self.body_scores.copy(), face, self.face_scores.copy(), hands, self.hand_scores.copy(),
            int(width), int(height), boxes=None, detected=self.detected,
        )

    def visible_body_joints(self, person: int = 0) -> int:
        return int((self.body_scores[person] > SCORE_THRESHOLD).sum())


def _flat(points: np.ndarray, scores: np.ndarray, width: int, height: int) -> Optional[list[float]]:
    """controlnet_aux's encoding: pixels, c = 1.0 for visible points, zeros otherwise; None if none is visible."""
    out: list[float] = []
    for (x, y), s in zip(points, scores):
        out += [float(x * width), float(y * height), 1.0] if s >= SCORE_THRESHOLD else [0.0, 0.0, 0.0]
    return out if any(out[2::3]) else None


def _raw(points: np.ndarray, scores: np.ndarray) -> list[float]:
    # normalised coordinates and raw scores: JSON floats round-trip exactly, so drawing from the JSON gives
    # the same pixels as drawing from the detector's output
    return [float(v) for (x, y), s in zip(points, scores) for v in (x, y, s)]


def frame_to_openpose(frame: PoseFrame) -> dict:
    """One ``POSE_KEYPOINT`` frame dict (pixel coordinates on the frame's canvas)."""
    w, h = frame.width, frame.height
    people = []
    for n in range(frame.num_people):
        body = _flat(frame.body[n], frame.body_scores[n], w, h)
        face = _flat(frame.face[n], frame.face_scores[n], w, h)
        if face is not None:
            # controlnet_aux pads DWPose's 68 face points to OpenPose's 70 with the two eyes
            eyes = _flat(frame.body[n, 14:16], frame.body_scores[n, 14:16], w, h) or [0.0] * 6
            face = face + eyes
        people.append({
            "pose_keypoints_2d": body if body is not None else [0.0] * (3 * NUM_BODY),
            "face_keypoints_2d": face,
            "hand_left_keypoints_2d": _flat(frame.hands[n, 0], frame.hand_scores[n, 0], w, h),
            "hand_right_keypoints_2d": _flat(frame.hands[n, 1], frame.hand_scores[n, 1], w, h),
            RAW_KEY: {
                "body": _raw(frame.body[n], frame.body_scores[n]),
                "face": _raw(frame.face[n], frame.face_scores[n]),
                "hand_left": _raw(frame.hands[n, 0], frame.hand_scores[n, 0]),
                "hand_right": _raw(frame.hands[n, 1], frame.hand_scores[n, 1]),
            },
        })
    return {"people": people, "canvas_width": int(w), "canvas_height": int(h)}


def to_openpose_json(frames: Sequence[PoseFrame]) -> list[dict]:
    """``POSE_KEYPOINT``: one dict per frame."""
    return [frame_to_openpose(f) for f in frames]


def _points(values: Optional[Sequence[float]], count: int) -> tuple[np.ndarray, np.ndarray]:
    pts, scores = np.zeros((count, 2)), np.zeros(count)
    if values:
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 3)[:count]
        pts[: len(arr)], scores[: len(arr)] = arr[:, :2], arr[:, 2]
    return pts, scores


_PARTS = (("body", "pose_keypoints_2d", NUM_BODY), ("face", "face_keypoints_2d", NUM_FACE),
          ("hand_left", "hand_left_keypoints_2d", NUM_HAND), ("hand_right", "hand_right_keypoints_2d", NUM_HAND))


def frame_from_openpose(data: dict) -> PoseFrame:
    """A ``PoseFrame`` from one ``POSE_KEYPOINT`` frame dict (ours, controlnet_aux's or OpenPose's)."""
    try:
        w, h = int(data["canvas_width"]), int(data["canvas_height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"pose keypoints need 'canvas_width' and 'canvas_height' (got {str(data)[:80]})") from exc
    if w < 1 or h < 1:
        raise InputError(f"pose keypoints need a positive canvas size, got {w}x{h}")
    people = data.get("people") or []
    if not isinstance(people, list) or not all(isinstance(p, dict) for p in people):
        raise InputError("pose keypoints: 'people' must be a list of dicts with *_keypoints_2d lists")
    if not people:
        return PoseFrame.empty(w, h)
    parts, is_raw = [], []
    for person in people:
        raw = person.get(RAW_KEY)
        is_raw.append(bool(raw))
        parts.append([_points(raw.get(rk) if raw else person.get(jk), n) for rk, jk, n in _PARTS])
    # foreign keypoints: controlnet_aux's rule, all visible coordinates within [0, 1] means normalised
    foreign = [p for p, r in zip(parts, is_raw) if not r]
    coords = np.concatenate([pts[sc > 0] for p in foreign for pts, sc in p] or [np.zeros((0, 2))])
    pixel_scale = np.array([1.0, 1.0]) if coords.size and np.all(np.abs(coords) <= 1.0) else np.array([w, h], float)
    scale = [np.array([1.0, 1.0]) if r else pixel_scale for r in is_raw]
    pts = [np.stack([p[i][0] / s for p, s in zip(parts, scale)]) for i in range(4)]
    sc = [np.stack([p[i][1] for p in parts]) for i in range(4)]
    return PoseFrame(pts[0], sc[0], pts[1], sc[1], np.stack([pts[2], pts[3]], axis=1), np.stack([sc[2], sc[3]], axis=1),
                     w, h, boxes=None, detected=True)


def from_openpose_json(frames: Sequence[dict] | dict) -> list[PoseFrame]:
    """``POSE_KEYPOINT`` (a list of frame dicts, or one dict) -> list of ``PoseFrame``."""
    if isinstance(frames, dict):
        frames = [frames]
    if not isinstance(frames, (list, tuple)):
        raise InputError(f"POSE_KEYPOINT must be a list of frame dicts, got {type(frames).__name__}")
    out = []
    for i, f in enumerate(frames):
        if not isinstance(f, dict):
            raise InputError(f"POSE_KEYPOINT frame {i} is a {type(f).__name__}, not a frame dict")
        try:
            out.append(frame_from_openpose(f))
        except InputError as exc:
            raise InputError(f"POSE_KEYPOINT frame {i}: {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"POSE_KEYPOINT frame {i} is malformed ({exc}); each *_keypoints_2d entry must be a "
                             f"flat list of x, y, score numbers") from exc
    return out
