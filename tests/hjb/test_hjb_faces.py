"""Face boxes and crops for HJB: masks at any resolution, the reference crop/embedding against the fixture."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from stableanimator_core.errors import InputError, NoFaceError
from stableanimator_core.hjb import (
    crop_face,
    image_to_face_range,
    reference_box,
    reference_face_embedding,
    target_boxes_from_masks,
)
from stableanimator_core.loading.iresnet_file import load_iresnet_file


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _fixture_masks(parity) -> torch.Tensor:
    files = sorted((parity / "inputs" / "faces").glob("frame_*.png"), key=lambda p: int(p.stem.split("_")[1]))
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("L"))).float() / 255 for f in files])


def test_target_boxes_from_masks_at_generation_and_other_resolutions(parity):
    inputs = json.loads((parity / "inputs" / "inputs.json").read_text())
    want = [tuple(b) for b in inputs["target_bboxes_yyxx"]]
    masks = _fixture_masks(parity)  # [9, 128, 64], already at generation size
    h, w = inputs["height"], inputs["width"]
    assert target_boxes_from_masks(masks, 9, h, w) == want
    # the same masks drawn at twice the resolution give the same boxes at generation size
    big = F.interpolate(masks[:, None], scale_factor=2, mode="nearest")[:, 0]
    assert target_boxes_from_masks(big, 9, h, w) == want
    # and boxes at twice the generation size scale with it
    doubled = target_boxes_from_masks(masks, 9, 2 * h, 2 * w)
    assert doubled[0] == (2 * want[0][0], 2 * want[0][1] + 1, 2 * want[0][2], 2 * want[0][3] + 1)


def test_empty_masks_single_mask_and_count_mismatch():
    masks = torch.zeros(3, 32, 16)
    masks[0, 4:10, 2:6] = 1.0
    masks[2, 0:2, 0:2] = 1.0
    assert target_boxes_from_masks(masks, 3, 64, 32) == [(8, 19, 4, 11), None, (0, 3, 0, 3)]
    assert target_boxes_from_masks(masks[0], 4, 32, 16) == [(4, 9, 2, 5)] * 4
    with pytest.raises(InputError, match="3 face masks for 5 frames"):
        target_boxes_from_masks(masks, 5, 32, 16)


def test_reference_box_crop_and_embedding_match_the_fixture(parity):
    inputs = json.loads((parity / "inputs" / "inputs.json").read_text())
    tensors = load_file(str(parity / "inputs" / "inputs.safetensors"))
    rgb = tensors["reference_rgb_uint8"].to(torch.uint8)  # [420, 300, 3]
    mask = np.array(Image.open(parity / "inputs" / "reference_mask.png").convert("L"))
    box = reference_box(tuple(rgb.shape[:2]), mask=mask)
    assert box == tuple(inputs["reference_bbox_yyxx"])
    assert reference_box(tuple(rgb.shape[:2]), box=box) == box
    net = load_iresnet_file(parity / "weights" / "face_embedding_extractor.safetensors")
    emb, crop = reference_face_embedding(net, rgb, box)
    assert _rel(crop, tensors["hjb_reference_face_crop_112"]) < 1e-4
    assert _rel(emb, tensors["hjb_reference_face_embedding"]) < 1e-4
    assert not emb.requires_grad
    # a ComfyUI IMAGE (float 0..1, batch of one) gives the same crop bit for bit
    _, crop_float = reference_face_embedding(net, (rgb.float() / 255)[None], box)
    assert torch.equal(crop_float, crop)


def test_reference_box_errors():
    with pytest.raises(NoFaceError):
        reference_box((10, 10), mask=np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="does not lie inside"):
        reference_box((10, 10), box=(0, 10, 0, 5))
    with pytest.raises(InputError):
        reference_box((10, 10))


def test_crop_face_with_origin_equals_full_frame_crop():
    torch.manual_seed(0)
    img = torch.randn(3, 40, 24)
    box = (10, 25, 5, 17)
    full = crop_face(img, box)
    window = crop_face(img[:, 8:, 4:], box, origin=(8, 4))
    assert full.shape == (1, 3, 112, 112)
    assert torch.equal(full, window)
    assert image_to_face_range(np.full((2, 2, 3), 255, np.uint8)).eq(1.0).all()
