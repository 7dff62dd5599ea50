"""Each deliberate difference from the official scripts has an ``official`` value that computes what they compute.

The pose and ArcFace choices are pinned in test_pose_extraction.py (SHA-256 of the official tool's output) and
test_identity_reference.py; this file pins the HJB window and face boxes, the no-face embedding, the precision
preset and the preset table itself.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from stableanimator_core.devices import resolve_decode_dtype, resolve_dtype
from stableanimator_core.hjb import HJBSettings
from stableanimator_core.identity.driving_faces import official_face_box
from stableanimator_core.presets import OFFICIAL, PACK, preset_choices
from stableanimator_core.sampling.windows import window_indices


# ---- HJB window: inference_op.py:461 tile_size=num_frames ------------------------------------------------
@pytest.mark.parametrize("window, run", [("all_frames", "B_hjb_op_faithful"), ("tiled", "C_hjb_tiled")])
def test_hjb_window_matches_the_fixture_runs(parity, fixture_inputs, window, run):
    meta = json.loads((parity / run / "meta.json").read_text())
    s = fixture_inputs.settings
    tile = HJBSettings(window=window).tile_size_for(s["num_frames"], s["tile_size"])
    assert tile == meta["tile_size"]
    calls = 2 * s["steps"] * len(window_indices(s["num_frames"], tile, min(s["tile_overlap"], tile - 1)))
    assert calls == meta["unet_calls"]


def test_hjb_window_is_checked():
    with pytest.raises(ValueError, match="window"):
        HJBSettings(window="one")


# ---- HJB face boxes: face_mask_extraction.py:10-38 then inference_op.py:429-438 ---------------------------
def _official_mask_box(boxes, height, width):
    """The official rule as written: draw every face rectangle on a zero mask (all 255 without a face), then
    take the bounding box of the 255 pixels."""
    mask = np.zeros((height, width), np.uint8)
    if len(boxes) == 0:
        mask[:] = 255
    for b in boxes:
        cv2.rectangle(mask, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), 255, thickness=cv2.FILLED)
    ys, xs = np.nonzero(mask == 255)
    return None if ys.size == 0 else (ys.min(), ys.max(), xs.min(), xs.max())


@pytest.mark.parametrize("boxes", [
    [(10.7, 20.2, 50.9, 60.5)],
    [(10.7, 20.2, 50.9, 60.5), (40.1, 5.9, 70.3, 30.0)],  # every face goes into the mask
    [(-4.6, -3.2, 20.5, 99.9), (90.2, 80.0, 130.0, 140.0)],  # clipped at both borders; int() truncates to 0
    [],  # no face: the whole frame
    [(150.0, 150.0, 170.0, 170.0)],  # outside: the official script stops; no box here
])
def test_official_face_box_is_the_mask_rule(boxes):
    assert official_face_box(boxes, 100, 120) == _official_mask_box(boxes, 100, 120)


def test_official_face_box_small_expected_case():
    assert official_face_box([(10.7, 20.2, 50.9, 60.5), (40.1, 5.9, 70.3, 30.0)], 100, 120) == (5, 60, 10, 70)


def test_official_target_boxes_come_from_the_driving_frames_unaligned(tmp_path):
    from stableanimator_core.pose.face_masks import sequence_face_boxes
    from stableanimator_core.identity import load_antelopev2
    from stableanimator_core.pose import PoseFrame, PoseSequence
    from stableanimator_core.testing.onnx_mocks import write_antelopev2_pack

    write_antelopev2_pack(str(tmp_path))
    model = load_antelopev2(str(tmp_path), provider="cpu")
    frame = np.full((200, 300, 3), 20, np.uint8)
    frame[50:110, 120:180] = (250, 200, 150)
    blank = np.full((200, 300, 3), 20, np.uint8)
    frames = [frame, blank]
    empty = PoseFrame.empty(300, 200)
    seq = PoseSequence(empty, [empty, empty], [empty, empty], [None, None], [None, None], 300, 200)
    boxes = sequence_face_boxes(seq, 100, 150, "official", frames, model)  # generation size: half
    faces = model.faces(frame)  # the RGB array, as the official COLOR_RGB2BGR on a BGR image gives it
    assert faces
    full = official_face_box([f.bbox for f in faces], 200, 300)
    y0, y1, x0, x1 = full
    assert boxes[0] == (y0 // 2, (y1 + 1 + 1) // 2 - 1, x0 // 2, (x1 + 1 + 1) // 2 - 1)
    assert boxes[1] == (0, 99, 0, 149)  # no face: the official all-255 mask


# ---- no face in the reference: a zero 512-d embedding through the face encoder -----------------------------
def test_zero_embedding_gives_the_face_encoders_tokens_not_zero_tokens(tiny_models):
    from stableanimator_core.pipeline import conditioning as C
    from stableanimator_core.pipeline.animate import face_tokens

    clip = torch.randn(1, 1, tiny_models.face_encoder.norm.normalized_shape[0], generator=torch.Generator().manual_seed(0))
    zero = np.zeros(512, np.float32)
    tokens = face_tokens(tiny_models, zero, clip)
    expected = C.encode_face_tokens(tiny_models.face_encoder, zero, clip).float()
    torch.testing.assert_close(tokens, expected, rtol=0, atol=0)
    assert tokens.abs().max() > 0
    assert not face_tokens(tiny_models, None, clip).any()  # the pack's zero_tokens mode


# ---- precision: inference_basic.py:320 fp16 (VAE decode included), inference_op.py:274 fp32 ----------------
def test_official_precision_per_stage():
    assert resolve_dtype("official", "cpu") == torch.float16
    assert resolve_dtype("official", "cpu", hjb=True) == torch.float32
    assert resolve_decode_dtype("official") == torch.float16
    assert resolve_decode_dtype("official", hjb=True) == torch.float32
    assert resolve_decode_dtype("auto") == torch.float32 and resolve_dtype("auto", "cpu") == torch.float32


def test_official_fp16_decode_is_the_fp16_vae(tiny_models):
    from stableanimator_core.pipeline.decode import SVD_SCALING_FACTOR, decode_latents

    latents = torch.randn(1, 2, 4, 16, 8, generator=torch.Generator().manual_seed(1))
    vae = tiny_models.vae
    frames = decode_latents(vae, latents, 4, dtype=torch.float16)
    assert next(vae.parameters()).dtype == torch.float32  # the loaded VAE is left as it was
    half = __import__("copy").deepcopy(vae).half()
    with torch.no_grad():
        z = (latents.flatten(0, 1) * (1 / SVD_SCALING_FACTOR)).half()
        expected = half.decode(z, num_frames=2).sample.float()
    torch.testing.assert_close(frames, (expected / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1), rtol=0, atol=0)
    fp32 = decode_latents(vae, latents, 4)
    assert 0 < (frames - fp32).abs().max() < 0.05  # a real fp16 decode: rounding, not another computation


# ---- the preset ------------------------------------------------------------------------------------------
def test_presets_and_overrides():
    assert preset_choices("pack") == PACK and preset_choices("official") == OFFICIAL
    assert preset_choices("official", {"precision": "fp32", "hjb_mode": None}).precision == "fp32"
    assert preset_choices("official", {"hjb_mode": None}).hjb_mode == "faithful"
    assert {f for f in PACK.names() if getattr(PACK, f) == getattr(OFFICIAL, f)} == set()  # every field differs
    with pytest.raises(ValueError, match="preset"):
        preset_choices("paper")
    with pytest.raises(ValueError, match="hjb_window must be one of tiled, all_frames"):
        preset_choices("official", {"hjb_window": "single"})
    with pytest.raises(ValueError, match="min_keypoints"):
        preset_choices("pack", {"min_keypoints": -1})
