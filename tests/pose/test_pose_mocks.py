"""The mock ONNX models keep the real models' I/O signatures and are small and fast to build."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from stableanimator_core.testing import onnx_mocks as mocks


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _io(model):
    g = model.graph
    dims = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return [(v.name, dims(v)) for v in g.input], [(v.name, dims(v)) for v in g.output]


def test_builders_are_small_and_valid():
    models = [mocks.build_yolox_mock(), mocks.build_dwpose_mock(), mocks.build_scrfd_mock(), mocks.build_glintr_mock()]
    sizes = [len(m.SerializeToString()) for m in models]
    assert max(sizes[:3]) < 20_000 and sizes[3] < 2_000_000
    for m in models:
        onnx.checker.check_model(m)
        assert m.opset_import[0].version == 17


def test_real_signatures():
    assert _io(mocks.build_yolox_mock()) == ([("input", [1, 3, 640, 640])], [("output", [1, 8400, 85])])
    assert _io(mocks.build_dwpose_mock()) == (
        [("input", [1, 3, 384, 288])], [("simcc_x", [1, 133, 576]), ("simcc_y", [1, 133, 768])])
    ins, outs = _io(mocks.build_scrfd_mock())
    assert ins == [("input.1", [1, 3, "height", "width"])]
    assert [n for n, _ in outs] == ["448", "471", "494", "451", "474", "497", "454", "477", "500"]
    assert [len(d) for _, d in outs] == [2] * 9  # un-batched, as the real SCRFD export
    assert _io(mocks.build_glintr_mock()) == ([("input.1", ["None", 3, 112, 112])], [("1333", ["None", 512])])


def test_scrfd_rows_follow_input_size():
    outs = _session(mocks.build_scrfd_mock()).run(None, {"input.1": np.zeros((1, 3, 320, 480), np.float32)})
    rows = [o.shape[0] for o in outs]
    assert rows == [(320 // s) * (480 // s) * 2 for s in (8, 16, 32)] * 3
    assert [o.shape[1] for o in outs] == [1] * 3 + [4] * 3 + [10] * 3


def test_yolox_mock_fires_once_on_a_bright_region():
    x = np.full((1, 3, 640, 640), 30, np.float32)
    x[:, :, 200:420, 250:380] = 220
    out = _session(mocks.build_yolox_mock()).run(None, {"input": x})[0][0]
    hits = np.nonzero(out[:, 4] > 0.3)[0]
    assert len(hits) >= 1 and np.all(hits >= 8000)  # stride-32 cells only
    cell = hits[0] - 8000
    cx, cy = (cell % 20 + 0.5) * 32, (cell // 20 + 0.5) * 32
    assert 250 <= cx <= 380 and 200 <= cy <= 420
    assert np.all(out[:, 5] == 1.0) and np.all(out[:, 6:] == 0.0)
    # nothing bright: no person
    quiet = _session(mocks.build_yolox_mock()).run(None, {"input": np.full((1, 3, 640, 640), 114, np.float32)})[0][0]
    assert quiet[:, 4].max() < 0.01


def test_pose_mock_puts_joints_at_dot_plus_template():
    x = np.full((1, 3, 384, 288), -1.0, np.float32)
    x[0, :, 150, 100] = 2.4
    sx, sy = _session(mocks.build_dwpose_mock()).run(None, {"input": x})
    locs = np.stack([sx[0].argmax(1), sy[0].argmax(1)], 1) / 2.0
    expected = (np.array([100, 150]) + mocks.POSE_TEMPLATE) % [288, 384]
    np.testing.assert_array_equal(locs, expected)
    scores = np.minimum(sx[0].max(1), sy[0].max(1))
    np.testing.assert_allclose(scores, 0.4 * 2.4 * mocks.POSE_SCORE_FACTORS, rtol=1e-6)
    assert scores[4] < 0.3 < scores[0]


def test_write_helpers(tmp_path):
    det, pose = mocks.write_dwpose_models(str(tmp_path / "DWPose"))
    assert [os.path.basename(det), os.path.basename(pose)] == ["yolox_l.onnx", "dw-ll_ucoco_384.onnx"]
    pack = mocks.write_antelopev2_pack(str(tmp_path / "insightface"))
    assert pack == str(tmp_path / "insightface" / "models" / "antelopev2")
    assert sorted(os.listdir(pack)) == ["glintr100.onnx", "scrfd_10g_bnkps.onnx"]


@pytest.mark.parametrize("nose", [(100, 80), (300, 200)])
def test_person_image_has_its_dot_brightest(nose):
    img = mocks.person_image(400, 500, (nose[0], nose[1] + 60), (150, 260), nose)
    assert img.shape == (400, 500, 3) and img.dtype == np.uint8
    gray = img.mean(axis=2)
    y, x = np.unravel_index(np.argmax(gray), gray.shape)
    assert abs(x - nose[0]) <= 2 and abs(y - nose[1]) <= 2
