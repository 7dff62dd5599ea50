"""Input files: 16-bit references keep their tones; the example inputs are never written through a link."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from stableanimator_core.io.video import read_image


def test_16_bit_grayscale_reference_keeps_its_tones(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    rgb = read_image(tmp_path / "gray16.png")
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    expected = np.round(ramp / 65535 * 255).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert 120 < rgb.mean() < 135  # a ramp, not "mostly white"


def test_8_bit_images_are_read_as_before(tmp_path):
    g = np.random.default_rng(0)
    img = g.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "rgb.png")
    Image.fromarray(img[..., 0]).save(tmp_path / "gray8.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png"), img)
    assert np.array_equal(read_image(tmp_path / "gray8.png"), np.repeat(img[..., :1], 3, axis=2))


def test_example_inputs_are_not_copied_through_a_dangling_symlink(pack, bridge, tmp_path, monkeypatch):
    inputs = tmp_path / "input"
    inputs.mkdir()
    outside = tmp_path / "outside" / "written.png"
    outside.parent.mkdir()
    os.symlink(outside, inputs / "stableanimator_reference.png")  # dangling: its target does not exist
    monkeypatch.setattr(bridge, "IN_COMFYUI", True)
    monkeypatch.setattr(bridge, "input_directory", lambda: inputs)
    pack._offer_example_inputs()
    assert not outside.exists()
    assert os.path.islink(inputs / "stableanimator_reference.png")
    assert (inputs / "stableanimator_driving.mp4").is_file()  # the other inputs are still offered


def test_example_inputs_copy_creates_missing_files_and_keeps_existing_ones(pack, bridge, tmp_path, monkeypatch):
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / "stableanimator_driving.mp4").write_bytes(b"mine")
    monkeypatch.setattr(bridge, "IN_COMFYUI", True)
    monkeypatch.setattr(bridge, "input_directory", lambda: inputs)
    pack._offer_example_inputs()
    assert (inputs / "stableanimator_driving.mp4").read_bytes() == b"mine"
    assert read_image(inputs / "stableanimator_reference.png").shape[2] == 3
