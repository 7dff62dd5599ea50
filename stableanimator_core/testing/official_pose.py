"""Inputs the official ``DWPose/skeleton_extraction.py`` was run on, and what it wrote, for pixel-parity tests.

``make_parity_inputs`` / ``make_mixed_inputs`` write synthetic frames; StableAnimator's DWPose/skeleton_extraction.py
(commit 020e7f2, unmodified) was run on exactly these files with the mock DWPose models of ``onnx_mocks``
(onnxruntime CPU, matplotlib 3.11), and the SHA-256 of each output PNG's decoded RGB pixels is recorded here
(first 16 hex digits), per ``<case>_<reference>``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

OFFICIAL_SHA256 = {  # first 16 hex digits
    "single_ref": [
        "a68f384f069a0f3f", "0af6363bef56f805", "342703e7805e495c",
        "5d57de036239bcc5", "e47c1624355fac7d", "8a594a031f73e89d",
        "2d5a0c38918ec5a4", "1999d3608631ba3d", "858e5ecc26c797cb",
    ],
    "multi_ref2": [
        "17b9285cbf9c45f7", "8f15245d3951b394", "bb6a89a33a5fc504",
        "b94e4c876aba523d", "5034292a0f502f9a", "473768f08a26739f",
    ],
    # make_mixed_inputs: two people on frames 2 and 6, nobody on 4 and 7 (the official tool fits on the
    # whole-image pose there and draws it; its scores are below 0.3, so nothing is drawn)
    "mixed_ref3": [
        "599dd3af6cf725ea", "75e007abf4045ef7", "0f759fd438c688c5",
        "198807b40264ca08", "6909f7dfd08417d7", "322df50e61c67ce4",
        "d57599feb6ba2494", "6909f7dfd08417d7", "3ae93cfe29f189f5",
    ],
}
CASES = {"single": ("ref", 9), "multi": ("ref2", 6), "mixed": ("ref3", 9)}


def draw_person(img, cx, cy, w, h, dot):
    cv2.ellipse(img, (cx, cy), (w // 2, h // 2), 0, 0, 360, (205, 200, 195), -1)
    cv2.circle(img, dot, 2, (255, 255, 255), -1)


def make_parity_inputs(root: str) -> None:
    rng = np.random.default_rng(1)
    for name, n, two in (("single", 9, False), ("multi", 6, True)):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n):
            img = np.full((480, 640, 3), 25, np.uint8)
            img += rng.integers(0, 20, img.shape, dtype=np.uint8)
            cx, cy = int(640 * 0.35 + 9 * i + rng.integers(-5, 6)), int(480 * 0.5 + rng.integers(-15, 16))
            draw_person(img, cx, cy, 128 + 3 * i, 216, (cx + int(rng.integers(-12, 13)), cy - 72 + i))
            if two and i % 2 == 1:
                draw_person(img, 512, cy, 140, 240, (516, cy - 40))
            cv2.imwrite(os.path.join(root, name, f"frame_{i}.png"), img)
    ref = np.full((768, 512, 3), 30, np.uint8)
    draw_person(ref, 250, 400, 140, 420, (255, 270))
    cv2.imwrite(os.path.join(root, "ref.png"), ref)
    ref2 = np.full((300, 420, 3), 30, np.uint8)
    draw_person(ref2, 200, 150, 90, 220, (204, 95))
    cv2.imwrite(os.path.join(root, "ref2.png"), ref2)


def make_mixed_inputs(root: str) -> None:
    """One-, two- and no-person frames in one sequence: two people on frames 2 and 6, nobody on 4 and 7
    (where the official tool poses the whole image and fits on it)."""
    rng = np.random.default_rng(2)
    os.makedirs(os.path.join(root, "mixed"), exist_ok=True)
    for i in range(9):
        img = np.full((480, 640, 3), 25, np.uint8)
        img += rng.integers(0, 20, img.shape, dtype=np.uint8)
        cx, cy = int(640 * 0.3 + 11 * i + rng.integers(-5, 6)), int(480 * 0.5 + rng.integers(-15, 16))
        if i not in (4, 7):
            draw_person(img, cx, cy, 124 + 4 * i, 220 - 2 * i, (cx + int(rng.integers(-12, 13)), cy - 75 + i))
        if i in (2, 6):  # a larger second person: the default keeps it, the official draws both
            draw_person(img, 500, cy + 10, 150, 250, (504, cy - 50))
        cv2.imwrite(os.path.join(root, "mixed", f"frame_{i}.png"), img)
    ref = np.full((640, 448, 3), 30, np.uint8)
    draw_person(ref, 230, 330, 130, 380, (236, 210))
    cv2.imwrite(os.path.join(root, "ref3.png"), ref)
