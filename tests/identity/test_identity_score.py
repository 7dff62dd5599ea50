"""Identity readout: per-frame ArcFace cosine to the reference, summary and plot (mock antelopev2, real photo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stableanimator_core.identity.score import IdentityScores, cosine, plot_scores
from stableanimator_core.io.video import read_image

INPUTS = Path(__file__).resolve().parents[2] / "example_workflows" / "inputs"


def test_summary_and_worst_frame():
    r = IdentityScores([0.9, None, 0.5, 0.7])
    assert r.mean == pytest.approx(0.7) and r.minimum == 0.5 and r.worst_frame == 2
    assert r.summary() == "identity (ArcFace cosine): mean 0.700, min 0.500 at frame 2, 3/4 frames with a face, 1 without"
    assert IdentityScores([None, None]).summary() == "identity: no face found in any of 2 frames"
    assert cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)


def test_plot_marks_missing_frames_in_red():
    img = plot_scores(IdentityScores([0.9, None, 0.5]))
    assert img.shape == (260, 640, 3) and img.dtype == np.uint8
    red = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
    blue = (img[..., 2] > 200) & (img[..., 0] < 80)
    assert red[:, 300:340].any() and not red[:, :280].any()  # the x sits at the middle frame only
    assert blue.any()


def test_identity_score_node_on_a_real_photo(pack, standalone_models):
    nodes = pack.nodes.NODE_CLASS_MAPPINGS
    photo = torch.from_numpy(read_image(INPUTS / "stableanimator_reference.png")).float()[None] / 255.0
    face, _ = nodes["StableAnimatorFaceEmbed"]().embed(photo, "identity", "cpu")
    frames = torch.cat([photo, torch.zeros_like(photo), photo.flip(2)])
    out = nodes["StableAnimatorIdentityScore"]().score(frames, face, "cpu")
    scores, summary, plot = out["result"]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)  # the reference itself
    assert scores[1] == -1.0  # black frame: no face
    assert -1.0 < scores[2] < 1.0
    assert summary.startswith("identity (ArcFace cosine): mean") and "2/3 frames with a face" in summary
    assert plot.shape == (1, 260, 640, 3)
    assert out["ui"]["text"] == [summary]
    # the summary is shown on the node (web/js/stableanimator.js draws stableanimator_text)
    assert out["ui"]["stableanimator_text"] == [{"text": summary, "level": "info"}]
    assert "2/3 frames with a face, 1 without" in summary


def test_identity_score_needs_an_identity(pack, standalone_models, errors):
    node = pack.nodes.NODE_CLASS_MAPPINGS["StableAnimatorIdentityScore"]()
    face = pack.nodes.payloads.FaceIdentity(None, None, (8, 8))
    with pytest.raises(errors.InputError, match="mode to 'identity'"):
        node.score(torch.zeros(1, 8, 8, 3), face, "cpu")
