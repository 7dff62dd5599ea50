"""Loading antelopev2 from the shared insightface folder, with explicit providers and clear errors."""

from __future__ import annotations

import logging
import os
import shutil
import sys

import pytest

from stableanimator_core.errors import CheckpointError, DependencyError
from stableanimator_core.identity import antelopev2
from stableanimator_core.identity.antelopev2 import AntelopeV2, find_pack, load_antelopev2
from stableanimator_core.testing.onnx_mocks import write_antelopev2_pack


def test_standard_layout_loads_detector_and_recogniser_on_cpu(tmp_path):
    pack = write_antelopev2_pack(str(tmp_path / "insightface"))
    assert find_pack(str(tmp_path / "insightface")) == (pack, True)
    model = load_antelopev2(str(tmp_path / "insightface"), provider="cpu")
    assert set(model.app.models) == {"detection", "recognition"}
    assert model.providers == ["CPUExecutionProvider"] and model.ctx_id == -1
    assert model.app.models["recognition"].session.get_providers() == ["CPUExecutionProvider"]
    assert load_antelopev2(str(tmp_path / "insightface"), provider="cpu") is model  # cached


def test_nested_zip_layout_is_accepted_with_a_hint(tmp_path, caplog):
    root = tmp_path / "insightface"
    pack = write_antelopev2_pack(str(root))
    nested = os.path.join(pack, "antelopev2")
    os.makedirs(nested)
    for name in os.listdir(pack):
        if name.endswith(".onnx"):
            shutil.move(os.path.join(pack, name), nested)
    with caplog.at_level(logging.WARNING):
        model = AntelopeV2(str(root), provider="cpu")
    assert model.folder == nested and "detection" in model.app.models
    assert "move them there" in caplog.text
    assert AntelopeV2(nested, provider="cpu").folder == nested  # the pack folder itself works too


def test_missing_pack_says_where_to_look_and_what_to_get(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_antelopev2(str(tmp_path / "insightface"), provider="cpu")
    msg = str(err.value)
    assert os.path.join(str(tmp_path / "insightface"), "models", "antelopev2") in msg
    assert "scrfd_10g_bnkps.onnx" in msg and "glintr100.onnx" in msg and "insightface model zoo" in msg
    pack = write_antelopev2_pack(str(tmp_path / "half"))
    os.remove(os.path.join(pack, "glintr100.onnx"))
    with pytest.raises(CheckpointError, match="glintr100.onnx not found"):
        find_pack(str(tmp_path / "half"))


def test_corrupt_model_is_a_checkpoint_error(tmp_path):
    pack = write_antelopev2_pack(str(tmp_path))
    with open(os.path.join(pack, "glintr100.onnx"), "wb") as fh:
        fh.write(b"truncated" * 50)
    with pytest.raises(CheckpointError, match="could not load the antelopev2 models"):
        AntelopeV2(str(tmp_path), provider="cpu")


def test_missing_insightface_names_the_install_command(monkeypatch, tmp_path):
    write_antelopev2_pack(str(tmp_path))
    monkeypatch.setitem(sys.modules, "insightface", None)
    with pytest.raises(DependencyError, match="pip install --no-deps insightface"):
        AntelopeV2(str(tmp_path), provider="cpu")
    with pytest.raises(DependencyError):
        antelopev2.require_insightface()
