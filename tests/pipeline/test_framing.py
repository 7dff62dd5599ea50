"""Reference framing: stretch (official), crop (centre / person / face) and pad keep the face box on the face."""

from __future__ import annotations

import numpy as np
import pytest

from stableanimator_core.pipeline import conditioning as C
from stableanimator_core.boxes import rescale_box
from stableanimator_core.errors import InputError
from stableanimator_core.pipeline.framing import border_colour, frame_reference, framed_size, subject_box

FACE = (255, 0, 0)
BACKGROUND = (90, 120, 60)


def photo(height: int, width: int, box):
    """A plain photo with a red 'face' covering the inclusive box (y0, y1, x0, x1)."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    y0, y1, x0, x1 = box
    img[y0 : y1 + 1, x0 : x1 + 1] = FACE
    return img


def red_fraction(img: np.ndarray, box, inset: int = 0) -> float:
    y0, y1, x0, x1 = box
    patch = img[y0 + inset : y1 + 1 - inset, x0 + inset : x1 + 1 - inset].astype(int)
    return float(np.mean((patch[..., 0] > 200) & (patch[..., 1] < 60) & (patch[..., 2] < 60)))


def ring_is_background(img: np.ndarray, box) -> bool:
    y0, y1, x0, x1 = box
    h, w = img.shape[:2]
    ring = []
    if y0 > 0:
        ring.append(img[y0 - 1, x0 : x1 + 1])
    if y1 < h - 1:
        ring.append(img[y1 + 1, x0 : x1 + 1])
    if x0 > 0:
        ring.append(img[y0 : y1 + 1, x0 - 1])
    if x1 < w - 1:
        ring.append(img[y0 : y1 + 1, x1 + 1])
    return all((r == BACKGROUND).all() for r in ring)


# (photo h, w, face box, output w, h): portrait photo into the trained square and landscape photo into 576x1024
CASES = [
    (768, 512, (150, 229, 330, 409), 512, 512),
    (720, 1280, (200, 299, 700, 789), 576, 1024),
]
MODES = [("stretch", "center"), ("crop", "center"), ("crop", "face"), ("crop", "person"), ("pad", "center")]


@pytest.mark.parametrize("h, w, box, out_w, out_h", CASES)
@pytest.mark.parametrize("mode, anchor", MODES)
def test_face_box_stays_on_the_face(h, w, box, out_w, out_h, mode, anchor):
    img = photo(h, w, box)
    subject = None
    if anchor == "face":
        subject = box
    elif anchor == "person":  # a person box around and below the face
        subject = (box[0] - 20, min(h - 1, box[1] + 300), box[2] - 60, min(w - 1, box[3] + 60))
    framed, framing = frame_reference(img, out_w, out_h, mode, anchor, subject)
    mapped = framing.box(box)
    assert framed.shape[:2] == framing.framed_hw
    if mode != "stretch":  # crop and pad give the output's aspect ratio at the photo's resolution
        assert abs(framed.shape[1] / framed.shape[0] - out_w / out_h) < 2 / min(framed.shape[:2])
    # on the framed photo: exactly the face, nothing but background around it
    assert mapped is not None
    assert red_fraction(framed, mapped) == 1.0 and ring_is_background(framed, mapped)
    if mode == "crop" and anchor == "center":
        assert mapped != box or framed.shape == img.shape  # a real crop moved it
    # where the model sees it: the VAE input at the output size, box mapped the way the HJB crop maps it
    vae = C.vae_input(framed, out_w, out_h)[0].permute(1, 2, 0).numpy()
    vae_uint8 = ((vae + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    at_out = rescale_box(mapped, framed.shape[:2], (out_h, out_w))
    assert red_fraction(vae_uint8, at_out, inset=2) > 0.97


def test_stretch_is_the_official_image_untouched():
    img = photo(300, 200, (10, 40, 10, 40))
    framed, framing = frame_reference(img, 512, 512, "stretch")
    assert framed is img and framing.origin_xy == (0, 0)
    assert framing.box((10, 40, 10, 40)) == (10, 40, 10, 40)


def test_crop_on_the_face_centres_it_and_clamps_at_the_edges():
    img = photo(400, 1000, (100, 199, 700, 799))
    framed, framing = frame_reference(img, 512, 512, "crop", "face", (100, 199, 700, 799))
    assert framed.shape[:2] == (400, 400)
    y0, y1, x0, x1 = framing.box((100, 199, 700, 799))
    assert (x0 + x1) / 2 == pytest.approx(199.5, abs=1)  # face in the middle of the 400-px window
    # a face at the right edge: the window stops at the image edge instead of leaving it
    img = photo(400, 1000, (100, 199, 950, 999))
    framed, framing = frame_reference(img, 512, 512, "crop", "face", (100, 199, 950, 999))
    assert framing.origin_xy == (600, 0) and framing.box((100, 199, 950, 999)) == (100, 199, 350, 399)


def test_pad_keeps_every_pixel_and_fills_with_the_border_colour():
    img = photo(300, 200, (100, 149, 50, 99))
    framed, framing = frame_reference(img, 512, 512, "pad")
    assert framed.shape[:2] == (300, 300) and framing.origin_xy == (-50, 0)
    np.testing.assert_array_equal(framed[:, 50:250], img)
    assert (framed[:, :50] == BACKGROUND).all() and (framed[:, 250:] == BACKGROUND).all()
    assert tuple(border_colour(img)) == BACKGROUND


def test_framed_sizes():
    assert framed_size(768, 512, 512, 512, "crop") == (512, 512)
    assert framed_size(768, 512, 512, 512, "pad") == (768, 768)
    assert framed_size(720, 1280, 1024, 576, "crop") == (720, 405)
    assert framed_size(720, 1280, 1024, 576, "pad") == (2276, 1280)
    assert framed_size(512, 512, 512, 512, "crop") == (512, 512)


def test_bad_options_and_missing_subject():
    img = photo(100, 100, (10, 20, 10, 20))
    with pytest.raises(ValueError, match="framing"):
        frame_reference(img, 64, 64, "zoom")
    with pytest.raises(ValueError, match="needs its box"):
        frame_reference(img, 64, 64, "crop", "face")
    with pytest.raises(InputError, match="no face found"):
        subject_box(img, "face", lambda image: [])
    assert subject_box(img, "face", lambda image: [(0, 0, 5, 5), (10, 10, 40, 30)]) == (10, 29, 10, 39)
    assert subject_box(img, "center", lambda image: 1 / 0) is None


def test_centre_crop_that_cuts_the_face_off_says_so():
    # the face at the right of a landscape photo, a portrait output: the centre window misses it
    img = photo(720, 1280, (200, 299, 1000, 1089))
    framed, framing = frame_reference(img, 576, 1024, "crop", "center")
    assert framing.box((200, 299, 1000, 1089)) is None
    framed, framing = frame_reference(img, 576, 1024, "crop", "face", (200, 299, 1000, 1089))
    assert red_fraction(framed, framing.box((200, 299, 1000, 1089))) == 1.0
