"""Face boxes / masks at generation resolution from the aligned skeleton (and from driving-frame boxes)."""

from __future__ import annotations

import numpy as np
import torch

from stableanimator_core.boxes import boxes_from_masks
from stableanimator_core.pose.face_boxes import (
    face_box_from_pose, face_boxes_from_poses, face_masks_from_poses, map_driving_box, pixel_box,
)
from stableanimator_core.pose.keypoints import PoseFrame


def frame_with_face(x0, y0, x1, y1, size=(400, 200), score=0.9, people=1):
    w, h = size
    f = PoseFrame(np.zeros((people, 18, 2)), np.zeros((people, 18)), np.zeros((people, 68, 2)),
                  np.full((people, 68), score), np.zeros((people, 2, 21, 2)), np.zeros((people, 2, 21)), w, h)
    xs = np.linspace(x0, x1, 68) / w
    ys = np.concatenate([np.linspace(y0, y1, 34), np.linspace(y1, y0, 34)]) / h
    f.face[:] = np.stack([xs, ys], -1)
    return f


def test_padded_box_from_face_points():
    f = frame_with_face(100, 50, 140, 90)  # 40 x 40 px of points on a 400 x 200 canvas
    # pads: top 25 % (10 px), bottom 5 % (2 px), sides 5 % (2 px) -> edges x 98..142, y 40..92
    assert face_box_from_pose(f, 200, 400) == (40, 91, 98, 141)
    # the same pose at generation size 800 x 400 (normalised points scale with the canvas)
    assert face_box_from_pose(f, 400, 800) == (80, 183, 196, 283)


def test_head_joints_when_face_points_are_missing():
    f = frame_with_face(100, 50, 140, 90, score=0.1)
    assert face_box_from_pose(f, 200, 400) is None
    f.body[0, 0], f.body_scores[0, 0] = (200 / 400, 100 / 200), 0.9  # nose
    f.body[0, 14], f.body_scores[0, 14] = (190 / 400, 95 / 200), 0.9  # eye 10 px away -> half size 30
    assert face_box_from_pose(f, 200, 400) == (70, 129, 170, 229)


def test_largest_person_and_clipping():
    f = frame_with_face(100, 50, 140, 90, people=2)
    f.face[1] = f.face[1] * 2 - [0.2, 0.3]  # second face twice as big
    box = face_box_from_pose(f, 200, 400)
    assert box[3] - box[2] > 60
    assert pixel_box(-5.0, -5.0, 10.0, 10.0, 100, 100) == (0, 9, 0, 9)
    assert pixel_box(100.0, 0.0, 120.0, 10.0, 100, 100) is None  # entirely right of the image
    assert pixel_box(float("nan"), 0.0, 1.0, 1.0, 10, 10) is None


def test_masks_batch():
    frames = [frame_with_face(100, 50, 140, 90), None, PoseFrame.empty(400, 200)]
    boxes, masks = face_masks_from_poses(frames, 200, 400)
    assert boxes == [(40, 91, 98, 141), None, None]
    assert isinstance(masks, torch.Tensor) and masks.shape == (3, 200, 400) and masks.dtype == torch.float32
    assert masks[0].sum() == 52 * 44 and masks[1:].sum() == 0
    assert boxes_from_masks(masks) == boxes  # the shared box convention round-trips
    assert face_boxes_from_poses(frames, 200, 400) == boxes


def test_driving_box_moves_like_the_face():
    scale, offset = np.array([0.5, 0.5]), np.array([0.25, 0.1])
    # driving box x 200..300, y 100..200 on 400 x 400 -> normalised (0.5..0.75, 0.25..0.5) -> mapped
    box = map_driving_box([200, 100, 300, 200], (400, 400), (scale, offset), 100, 200)
    assert box == (22, 34, 100, 124)  # y 0.225..0.35 of 100, x 0.5..0.625 of 200
    assert map_driving_box(None, (400, 400), (scale, offset), 100, 200) is None
    assert map_driving_box([0, 0, 10, 10], (400, 400), None, 100, 200) is None
