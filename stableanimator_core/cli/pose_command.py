"""``pose``: DWPose skeletons of a driving video, aligned to a reference image, as StableAnimator's
``DWPose/skeleton_extraction.py`` writes them (``OUT/frame_<i>.png`` at the reference image's size), plus
``OUT/keypoints.json`` (ComfyUI ``POSE_KEYPOINT``: one OpenPose-style dict per frame, on the reference canvas)
and, with ``--masks``, face masks ``OUT/faces/frame_<i>.png`` for the HJB face optimisation.

Only argparse is imported here; numpy, OpenCV and onnxruntime load when the command runs.
"""

from __future__ import annotations

import argparse

from ..loading.catalogue import PROVIDER_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", required=True, help="YOLOX person detector, e.g. models/DWPose/yolox_l.onnx")
    parser.add_argument("--estimator", required=True,
                        help="DWPose whole-body model, e.g. models/DWPose/dw-ll_ucoco_384.onnx")
    parser.add_argument("--reference", required=True, help="reference image (the person to animate)")
    parser.add_argument("--driving", required=True,
                        help="driving video file, or a folder of frame_<i>.png (ordered by the number i, not by name)")
    parser.add_argument("--out", required=True, help="output folder for frame_<i>.png and keypoints.json")
    parser.add_argument("--align", choices=("global", "limbs", "none"), default="global",
                        help="global: the official rescale (default); limbs: give every bone the reference's "
                             "length, keep the driving angles; none: no alignment")
    parser.add_argument("--preset", choices=("pack", "official"), default="pack",
                        help="official: --person all --missing whole_image --min-keypoints 0, which reproduces "
                             "StableAnimator's DWPose/skeleton_extraction.py on every frame (explicit options win)")
    parser.add_argument("--missing", choices=("empty", "repeat", "error", "whole_image"), default=None,
                        help="frames without a usable person: black frame (default), repeat the previous pose, "
                             "stop with an error, or draw the pose found on the whole image (the official tool); "
                             "the alignment fit is the same for all")
    parser.add_argument("--person", choices=("largest", "confident", "all"), default=None,
                        help="with several people: the largest (default), the most confident, or all of them "
                             "(the official tool's behaviour)")
    parser.add_argument("--min-keypoints", type=int, default=None,
                        help="a person needs at least this many body keypoints with score > 0.3 (default 1)")
    parser.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto",
                        help="onnxruntime device: auto = CUDA when available, else CPU")
    parser.add_argument("--masks", action="store_true",
                        help="also write face masks (from the aligned face keypoints) to OUT/faces/frame_<i>.png")
    parser.add_argument("--mask-size", default=None, metavar="WxH",
                        help="size of the face masks, e.g. 512x512 (default: the reference image's size)")


def _write_png(path: str, rgb) -> None:
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
    if not ok:
        raise OSError(f"could not encode {path}")
    data.tofile(path)


def _mask_size(text, width: int, height: int) -> tuple[int, int]:
    from ..errors import InputError

    if text is None:
        return width, height
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise InputError(f"--mask-size must look like 512x768, got {text!r}") from exc
    if w <= 0 or h <= 0:
        raise InputError(f"--mask-size must be positive, got {text!r}")
    return w, h


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import os
    import time

    from pathlib import Path

    from ..errors import InputError
    from ..pose import DWPose, check_first_pose, extract_poses, render_skeletons, to_openpose_json
    from ..io.video import frame_files, iter_video_frames, read_image

    from ..presets import preset_choices

    log = logging.getLogger("stableanimator_core.pose")
    choices = preset_choices(args.preset, vars(args))
    reference = read_image(args.reference)
    mask_size = _mask_size(args.mask_size, reference.shape[1], reference.shape[0]) if args.masks else None
    driving = Path(args.driving)
    if not driving.exists():
        raise InputError(f"driving input {driving} does not exist")
    # frames are decoded one at a time: a long video never sits in memory
    frames = (read_image(p) for p in frame_files(driving)) if driving.is_dir() else iter_video_frames(driving)
    model = DWPose(args.detector, args.estimator, provider=args.provider)

    start = time.perf_counter()
    sequence = extract_poses(reference, frames, model, align=args.align, missing=choices.missing,
                             person=choices.person, min_keypoints=choices.min_keypoints)
    detect_s = time.perf_counter() - start
    check = check_first_pose(sequence, args.align)
    (log.warning if check.warning else log.info)("%s", check.message)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    for i, image in enumerate(render_skeletons(sequence)):
        _write_png(os.path.join(args.out, f"frame_{i}.png"), image)
    draw_s = time.perf_counter() - start
    with open(os.path.join(args.out, "keypoints.json"), "w", encoding="utf-8") as fh:
        json.dump(to_openpose_json(sequence.aligned), fh)
    if args.masks:
        from ..pose import face_masks_from_poses

        w, h = mask_size
        boxes, masks = face_masks_from_poses(sequence.aligned, h, w)
        os.makedirs(os.path.join(args.out, "faces"), exist_ok=True)
        for i in range(len(boxes)):
            _write_png(os.path.join(args.out, "faces", f"frame_{i}.png"), (masks[i].numpy() * 255).astype("uint8"))
        log.info("face found in %d of %d frames", sum(b is not None for b in boxes), len(boxes))
    n = len(sequence.aligned)
    log.info("%d frames -> %s (detection + pose %.1f ms/frame, drawing %.1f ms/frame)",
             n, args.out, 1000 * detect_s / n, 1000 * draw_s / n)
    return 0
