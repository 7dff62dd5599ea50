"""DWPose preprocessing: detection, whole-body keypoints, alignment to the reference, drawing, face boxes.

Written for onnxruntime + OpenCV + numpy (no dwpose package); see each module for what it reproduces from
StableAnimator's ``DWPose`` tools. The names below are the API the nodes and the CLI use.
"""

from .alignment import ALIGN_MODES, Alignment, align_poses
from .drawing import draw_pose
from .extraction import (
    MISSING_POLICIES, PERSON_CHOICES, PoseSequence, extract_poses, render_skeletons, render_skeletons_at,
    sequence_from_poses,
)
from .first_pose import FirstPoseCheck, check_first_pose
from .face_boxes import face_box_from_pose, face_boxes_from_poses, face_masks_from_poses, map_driving_box
from .keypoints import PoseFrame, from_openpose_json, to_openpose_json
from .wholebody import DWPose

__all__ = [
    "ALIGN_MODES", "MISSING_POLICIES", "PERSON_CHOICES", "Alignment", "DWPose", "FirstPoseCheck", "PoseFrame",
    "PoseSequence", "align_poses", "check_first_pose", "draw_pose", "extract_poses", "face_box_from_pose",
    "face_boxes_from_poses", "face_masks_from_poses", "from_openpose_json", "map_driving_box", "render_skeletons",
    "render_skeletons_at", "sequence_from_poses",
    "to_openpose_json",
]
