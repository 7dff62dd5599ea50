"""Preprocessing nodes: reference framing, DWPose skeletons aligned to the reference (with the first-pose check),
skeletons from POSE_KEYPOINT, ArcFace identity.

Over 300 lines because it holds four node classes whose input declarations and tooltips are most of it; pose
extraction, alignment and face boxes live in ``stableanimator_core.pose`` / ``.identity``."""

from __future__ import annotations

import logging
import numpy as np
import torch

from ..stableanimator_core.boxes import box_from_xyxy, masks_from_boxes
from ..stableanimator_core.loading import catalogue
from ..stableanimator_core.pipeline.conditioning import resize_rgb, to_uint8_rgb
from ..stableanimator_core.errors import InputError
from ..stableanimator_core.pose.face_masks import FACE_MASK_SOURCES, face_masks_at, sequence_face_boxes
from ..stableanimator_core.pipeline.framing import (
    CROP_ANCHORS, FRAMING_MODES, face_finder, frame_reference, person_finder, subject_box,
)
from ..stableanimator_core.identity import (
    ARCFACE_CHANNELS, NO_FACE_POLICIES, facexlib_landmark_model, load_antelopev2, reference_identity,
)
from ..stableanimator_core.identity.driving_faces import official_face_box
from ..stableanimator_core.presets import OFFICIAL, PRESETS
from ..stableanimator_core.pose import (
    ALIGN_MODES, MISSING_POLICIES, PERSON_CHOICES, DWPose, check_first_pose, extract_poses, from_openpose_json,
    render_skeletons, render_skeletons_at, sequence_from_poses, to_openpose_json,
)
from . import comfy_bridge as bridge
from .payloads import FACE, POSE_KEYPOINT, FaceIdentity
from .node_text import text_ui
from .pose_preview import pose_preview_ui

log = logging.getLogger("StableAnimator")
CATEGORY = "StableAnimator/preprocess"
PROVIDERS = list(catalogue.PROVIDER_CHOICES)


def _onnx_choices(model: catalogue.ModelFile) -> list[str]:
    return bridge.file_choices(bridge.ONNX_EXTENSIONS, model.contains, model.path)


def _frames(images: torch.Tensor, what: str) -> list[np.ndarray]:
    if images.ndim != 4 or images.shape[0] < 1:
        raise InputError(f"{what} must be an IMAGE batch with at least one frame, got shape {tuple(images.shape)}")
    return [to_uint8_rgb(f) for f in images]


def _images(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 frames -> ComfyUI IMAGE, filled in place (no second full-size copy of the batch)."""
    out = torch.empty((len(frames), *frames[0].shape), dtype=torch.float32)
    for i, frame in enumerate(frames):
        out[i] = torch.from_numpy(frame)
    return out.div_(255.0)


def _first_pose_ui(seq, align: str) -> dict:
    check = check_first_pose(seq, align)
    (log.warning if check.warning else log.info)("%s", check.message)
    return text_ui((check.message, check.warning))


class StableAnimatorFrameReference:
    DESCRIPTION = ("Fits the reference photo to the video's aspect ratio before anything else looks at it. stretch "
                   "(official): unchanged, later squashed to width x height. crop: the largest window of the video's "
                   "aspect, centred on the image, the detected person or the detected face. pad: the whole photo on "
                   "a canvas of the video's aspect, filled with its border colour. Feed the framed image to DWPose, "
                   "Face Embed, CLIP Encode and Conditioning alike, and width/height to Conditioning, so the "
                   "skeletons, the face box and the latent all match.")
    CATEGORY = CATEGORY
    FUNCTION = "frame"
    RETURN_TYPES = ("IMAGE", "INT", "INT")
    RETURN_NAMES = ("reference", "width", "height")
    OUTPUT_TOOLTIPS = ("The framed reference (the photo's own pixels: cropped or padded, never resampled).",
                       "The video width, for StableAnimator Conditioning.",
                       "The video height, for StableAnimator Conditioning.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "reference": ("IMAGE", {"tooltip": "The reference photo."}),
            "width": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 64,
                              "tooltip": "Video width (trained: 512x512 and 576x1024)."}),
            "height": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 64, "tooltip": "Video height."}),
            "framing": (list(FRAMING_MODES), {"default": "stretch",
                                              "tooltip": "stretch = official (squashed to width x height). crop: "
                                                         "cut to the video's aspect. pad: extend to it with the "
                                                         "border colour."}),
            "crop_on": (list(CROP_ANCHORS), {"default": "center",
                                             "tooltip": "Where a crop is centred: the image centre, the largest "
                                                        "person (DWPose's detector) or the largest face "
                                                        "(antelopev2). Ignored by stretch and pad."}),
            "detector": (_onnx_choices(catalogue.DWPOSE_DETECTOR),
                         {"tooltip": "YOLOX person detector, used only for crop_on = person."}),
            "provider": (PROVIDERS, {"default": "auto", "tooltip": "onnxruntime device for the detectors."}),
        }}

    def frame(self, reference, width, height, framing, crop_on, detector, provider):
        ref = _frames(reference, "reference")[0]
        if framing == "stretch":  # official: the image goes on untouched, bit for bit
            return (reference[:1, :, :, :3], width, height)
        find = None
        if framing == "crop" and crop_on == "person":
            find = person_finder(str(bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, detector, "DWPose detector")),
                                 provider)
        elif framing == "crop" and crop_on == "face":
            find = face_finder(load_antelopev2(str(bridge.insightface_root()), provider))
        box = subject_box(ref, crop_on, find) if find is not None else None
        framed, framing_map = frame_reference(ref, width, height, framing, crop_on if box else "center", box)
        oh, ow = framing_map.source_hw
        log.info("reference framed (%s%s): %dx%d -> %dx%d", framing, f" on the {crop_on}" if box else "",
                 ow, oh, framed.shape[1], framed.shape[0])
        return (_images([framed]), width, height)


class StableAnimatorDWPose:
    DESCRIPTION = ("DWPose skeletons of the driving frames, aligned to the reference person's body and drawn the way "
                   "StableAnimator was trained (official skeleton_extraction.py, pixel for pixel with 'global'). "
                   "Also outputs the keypoints (POSE_KEYPOINT, as comfyui_controlnet_aux) and per-frame face masks "
                   "for the HJB face optimisation. Misaligned skeletons are the main cause of identity loss: check "
                   "the preview before sampling (to run this node alone, attach a Preview Image to 'skeletons').")
    CATEGORY = CATEGORY
    FUNCTION = "extract"
    RETURN_TYPES = ("IMAGE", POSE_KEYPOINT, "MASK")
    RETURN_NAMES = ("skeletons", "keypoints", "face_masks")
    OUTPUT_TOOLTIPS = ("Aligned skeleton frames at width x height (feed StableAnimator Conditioning).",
                       "The aligned keypoints, OpenPose-JSON per frame (POSE_KEYPOINT), on the reference's canvas.",
                       "Face masks per frame at width x height (feed the sampler's face_masks).")
    # Not an output node: an output node runs even when the rest of the prompt is invalid (ComfyUI executes every
    # valid output), so an API client got "success" for a half-run prompt. The preview still shows whenever the
    # node runs, because ComfyUI sends any node's "ui" result.
    OUTPUT_NODE = False

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "driving": ("IMAGE", {"tooltip": "Frames of the driving video (e.g. from Load Video + Get Video "
                                             "Components, or VHS Load Video)."}),
            "reference": ("IMAGE", {"tooltip": "The reference photo: skeletons are scaled to its body and drawn at "
                                               "its size."}),
            "detector": (_onnx_choices(catalogue.DWPOSE_DETECTOR),
                         {"tooltip": "YOLOX person detector (DWPose/yolox_l.onnx)."}),
            "estimator": (_onnx_choices(catalogue.DWPOSE_ESTIMATOR),
                          {"tooltip": "DWPose whole-body model (DWPose/dw-ll_ucoco_384.onnx)."}),
            "align": (list(ALIGN_MODES), {"default": "global",
                                          "tooltip": "global: the official rescale. limbs: every bone gets the "
                                                     "reference's length, the driving angles are kept. none: off."}),
            "missing_person": (list(MISSING_POLICIES), {"default": "empty",
                                                        "tooltip": "Frames without a person: empty skeleton, repeat "
                                                                   "the previous pose, stop with an error, or draw "
                                                                   "the pose found on the whole image (official). "
                                                                   "The alignment fit is the same for all."}),
            "several_people": (list(PERSON_CHOICES), {"default": "largest",
                                                      "tooltip": "Frames with several people: animate the largest, "
                                                                 "the most confident, or draw all (official). "
                                                                 "Such frames never enter the alignment fit."}),
            "face_masks_from": (list(FACE_MASK_SOURCES), {"default": "skeleton",
                                                          "tooltip": "Face boxes from the aligned face keypoints; "
                                                                     "from insightface on the driving frames, moved "
                                                                     "with the alignment; or official: "
                                                                     "face_mask_extraction.py's boxes on the driving "
                                                                     "frames (every face, whole frame when none; "
                                                                     "insightface needs antelopev2)."}),
            "provider": (PROVIDERS, {"default": "auto", "tooltip": "onnxruntime device: auto = CUDA when available."}),
        }, "optional": {
            "preset": (list(PRESETS), {"default": "pack",
                                       "tooltip": "official: as skeleton_extraction.py and face_mask_extraction.py "
                                                  "(everyone drawn, the whole-image pose where nobody is detected, "
                                                  "official face masks), whatever those widgets say."}),
            "width": ("INT", {"default": 512, "min": 0, "max": 2048, "step": 64,
                              "tooltip": "The generation width (as in StableAnimator Conditioning): skeletons and "
                                         "masks are drawn at the reference's size, as the official code does, and "
                                         "kept at this size. 0 = the reference's size (much more RAM for large "
                                         "photos)."}),
            "height": ("INT", {"default": 512, "min": 0, "max": 2048, "step": 64,
                               "tooltip": "The generation height (as in StableAnimator Conditioning); 0 = the "
                                          "reference's size."}),
        }}

    @classmethod
    def IS_CHANGED(cls, detector, estimator, **_):
        # re-run when an ONNX file is replaced in place (ComfyUI otherwise caches on the unchanged names)
        return bridge.files_fingerprint(bridge.STABLEANIMATOR_FOLDER, [detector, estimator])

    def extract(self, driving, reference, detector, estimator, align, missing_person, several_people,
                face_masks_from, provider, preset="pack", width=0, height=0):
        min_keypoints = 1
        if preset == "official":
            several_people, missing_person = OFFICIAL.person, OFFICIAL.missing
            min_keypoints, face_masks_from = OFFICIAL.min_keypoints, OFFICIAL.hjb_boxes
        frames = _frames(driving, "driving")
        ref = _frames(reference, "reference")[0]
        model = DWPose(str(bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, detector, "DWPose detector")),
                       str(bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, estimator, "DWPose estimator")),
                       provider=provider)
        progress = bridge.Progress(len(frames))

        def on_frame(i):
            progress.update(i + 1)
            bridge.check_interrupt()

        seq = extract_poses(ref, frames, model, align=align, missing=missing_person, person=several_people,
                            min_keypoints=min_keypoints, on_frame=on_frame)
        width, height = width or seq.width, height or seq.height
        skeletons = list(render_skeletons_at(seq, width, height))  # uint8 at the generation size until output
        face_analysis = None
        if face_masks_from != "skeleton":
            face_analysis = load_antelopev2(str(bridge.insightface_root()), provider)
        boxes = sequence_face_boxes(seq, seq.height, seq.width, face_masks_from, frames, face_analysis)
        masks = face_masks_at(boxes, (seq.height, seq.width), height, width)
        preview_ref = ref if ref.shape[:2] == (height, width) else resize_rgb(ref, width, height)
        return {"ui": {**pose_preview_ui(preview_ref, skeletons), **_first_pose_ui(seq, align)},
                "result": (_images(skeletons), to_openpose_json(seq.aligned), masks)}


class StableAnimatorPoseFromKeypoints:
    DESCRIPTION = ("Draws StableAnimator skeletons from POSE_KEYPOINT (e.g. comfyui_controlnet_aux's DWPose "
                   "Estimator), optionally aligned to the reference's keypoints, with face masks for HJB.")
    CATEGORY = CATEGORY
    FUNCTION = "draw"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("skeletons", "face_masks")
    OUTPUT_TOOLTIPS = ("Skeleton frames drawn at the keypoints' canvas size.", "Face masks per frame.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "keypoints": (POSE_KEYPOINT, {"tooltip": "Driving keypoints, one OpenPose-JSON dict per frame."}),
            "align": (list(ALIGN_MODES), {"default": "global",
                                          "tooltip": "Alignment to reference_keypoints (ignored without them)."}),
            "missing_person": (list(MISSING_POLICIES), {"default": "empty",
                                                        "tooltip": "Frames without a person."}),
        }, "optional": {
            "reference_keypoints": (POSE_KEYPOINT, {"tooltip": "Keypoints of the reference photo, for alignment; "
                                                               "the skeletons are drawn on its canvas."}),
        }}

    def draw(self, keypoints, align, missing_person, reference_keypoints=None):
        poses = from_openpose_json(keypoints)
        if not poses:
            raise InputError("keypoints holds no frames")
        if reference_keypoints is not None:
            ref = from_openpose_json(reference_keypoints)[0]
        else:
            align = "none"
            ref = next((p for p in poses if p.num_people), poses[0])
        seq = sequence_from_poses(ref, poses, align=align, missing=missing_person)
        skeletons = list(render_skeletons(seq))
        boxes = sequence_face_boxes(seq, seq.height, seq.width)
        result = (_images(skeletons), masks_from_boxes(boxes, seq.height, seq.width))
        # without the reference's keypoints there is nothing to compare the first pose with
        return {"ui": _first_pose_ui(seq, align) if reference_keypoints is not None else {}, "result": result}


class StableAnimatorFaceEmbed:
    DESCRIPTION = ("The reference's ArcFace identity: insightface antelopev2 (models/insightface/models/antelopev2, "
                   "shared with InstantID / IPAdapter FaceID), largest face, raw 512-d embedding, fed as BGR as in "
                   "StableAnimator's training. Stops with an error when there is no face, unless mode is "
                   "'no_identity'.")
    CATEGORY = CATEGORY
    FUNCTION = "embed"
    RETURN_TYPES = (FACE, "MASK")
    RETURN_NAMES = ("face", "face_mask")
    OUTPUT_TOOLTIPS = ("The identity for StableAnimator Conditioning (and the reference face box for HJB).",
                       "Mask of the face box on the reference.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "reference": ("IMAGE", {"tooltip": "The reference photo."}),
            "mode": (["identity", "no_identity"], {"default": "identity",
                                                   "tooltip": "identity: use the face (error if none is found). "
                                                              "no_identity: animate without identity tokens."}),
            "provider": (PROVIDERS, {"default": "auto", "tooltip": "onnxruntime device: auto = CUDA when available."}),
        }, "optional": {
            "channels": (list(ARCFACE_CHANNELS), {"default": "training",
                                                  "tooltip": "training: insightface gets BGR, as in StableAnimator's "
                                                             "training. official_inference: RGB, as the official "
                                                             "inference scripts hand it (a channel-swap slip)."}),
            "no_face": (list(NO_FACE_POLICIES), {"default": "error",
                                                 "tooltip": "No face found: stop with an error; zero_tokens: animate "
                                                            "without identity; official: retry on a facexlib-aligned "
                                                            "face (models/facexlib, if installed), then a zero ArcFace "
                                                            "embedding through the face encoder."}),
            "preset": (list(PRESETS), {"default": "pack",
                                       "tooltip": "official: channels official_inference, no_face official and the "
                                                  "face box of face_mask_extraction.py (every face), whatever those "
                                                  "widgets say."}),
        }}

    def embed(self, reference, mode, provider, channels="training", no_face="error", preset="pack"):
        ref = _frames(reference, "reference")[0]
        h, w = ref.shape[:2]
        if mode == "no_identity":
            return (FaceIdentity(None, None, (h, w)), torch.zeros(1, h, w))
        if preset == "official":
            channels, no_face = OFFICIAL.arcface_channels, OFFICIAL.no_face
        model = load_antelopev2(str(bridge.insightface_root()), provider)
        landmarks = facexlib_landmark_model(str(bridge.models_dir() / "facexlib")) if no_face == "official" else None
        identity = reference_identity(ref, model, image_name="the reference image", no_face=no_face,
                                      channels=channels, landmark_model=landmarks)
        if identity is None:  # zero_tokens
            return (FaceIdentity(None, None, (h, w)), torch.zeros(1, h, w))
        if preset == "official":  # face_mask_extraction.py's reference mask, as inference_op.py reads it
            box = official_face_box(identity.face_boxes, h, w)
        else:
            box = None if identity.box is None else box_from_xyxy(identity.box, h, w)
        return (FaceIdentity(identity.embedding, box, (h, w), identity.det_score), masks_from_boxes([box], h, w))


NODE_CLASS_MAPPINGS = {
    "StableAnimatorFrameReference": StableAnimatorFrameReference,
    "StableAnimatorDWPose": StableAnimatorDWPose,
    "StableAnimatorPoseFromKeypoints": StableAnimatorPoseFromKeypoints,
    "StableAnimatorFaceEmbed": StableAnimatorFaceEmbed,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StableAnimatorFrameReference": "StableAnimator Frame Reference (stretch / crop / pad)",
    "StableAnimatorDWPose": "StableAnimator DWPose (aligned skeletons)",
    "StableAnimatorPoseFromKeypoints": "StableAnimator Skeletons from Keypoints",
    "StableAnimatorFaceEmbed": "StableAnimator Face Embed (ArcFace)",
}
