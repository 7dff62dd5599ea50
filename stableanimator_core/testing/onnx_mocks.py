"""Tiny ONNX stand-ins for the preprocessing models, with the real models' input/output names and shapes.

The real DWPose and antelopev2 files are hundreds of MB and not redistributable from a test, so tests and the
demo models folder use these. Their outputs are deterministic functions of image brightness, so every
pre- and post-processing step (letterbox, grid decode, NMS, affine crop, SimCC decode, insightface's
alignment) is exercised with values that can be predicted:

* ``yolox_l.onnx``: one "person" per local brightness peak of the stride-32 grid (blurred mean gray above
  ~150); the box is 7 strides (224 px of the 640 letterbox) around the peak cell. Strides 8/16 never fire.
* ``dw-ll_ucoco_384.onnx``: SimCC x/y are the column/row maxima of the crop's mean brightness, upsampled x2.
  Keypoint ``k`` is shifted by ``POSE_TEMPLATE[k]`` (crop pixels) from the brightest point, so a bright dot
  lands exactly at keypoint 0 (the nose) and the rest form a small person-like figure; its score is
  ``0.4 * normalised brightness * POSE_SCORE_FACTORS[k]`` (a white dot gives ~0.98; some joints are damped
  below DWPose's 0.3 threshold on purpose).
* ``scrfd_10g_bnkps.onnx``: one face per brightness peak of the stride-32 grid, box 128 px, five fixed
  landmarks; dynamic input size like the real model.
* ``glintr100.onnx``: 8x8 average pool -> flatten (588) -> seeded 588x512 linear map.

All builders use plain ``onnx.helper`` (opset 17) and run in well under a second.
"""

from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np

OPSET = 17
IR_VERSION = 8

# (x, y) offsets in the 288x384 pose crop, relative to the brightest point, for the 133 COCO-WholeBody joints
_BODY17 = [
    (0, 0), (5, -5), (-5, -5), (11, -2), (-11, -2),  # nose, eyes, ears (left = image right, as for a person facing us)
    (24, 22), (-24, 22), (34, 50), (-34, 50), (38, 76), (-38, 76),  # shoulders, elbows, wrists
    (15, 82), (-15, 82), (17, 116), (-17, 116), (18, 150), (-18, 150),  # hips, knees, ankles
]
_FEET6 = [(24, 154), (28, 156), (18, 158), (-24, 154), (-28, 156), (-18, 158)]


def _face68() -> list[tuple[int, int]]:
    pts = []
    for i in range(68):
        angle = 2 * math.pi * i / 68
        pts.append((int(round(9 * math.cos(angle))), int(round(2 + 11 * math.sin(angle)))))
    return pts


def _hand21(wrist: tuple[int, int], side: int) -> list[tuple[int, int]]:
    pts = [wrist]
    for finger in range(5):
        for joint in range(1, 5):
            pts.append((wrist[0] + side * (finger * 3 - 6), wrist[1] + 3 + joint * 3))
    return pts


POSE_TEMPLATE: np.ndarray = np.array(
    _BODY17 + _FEET6 + _face68() + _hand21(_BODY17[9], 1) + _hand21(_BODY17[10], -1), dtype=np.int64
)
assert POSE_TEMPLATE.shape == (133, 2)

POSE_SCORE_FACTORS: np.ndarray = np.ones(133, dtype=np.float32)
POSE_SCORE_FACTORS[4] = 0.25  # right ear: below the 0.3 drawing threshold for any brightness
POSE_SCORE_FACTORS[16] = 0.25  # right ankle
POSE_SCORE_FACTORS[112 + 1 : 112 + 5] = 0.6  # right-hand thumb: dimmer hand lines

SCRFD_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
GLINTR_OUTPUT = "1333"


def _onnx():
    import onnx  # optional at import time: only tests and the demo-models command need it

    return onnx


def _const(name: str, array: np.ndarray):
    onnx = _onnx()
    return onnx.helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(array), name))


def _gauss_kernel(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)[None, None]


def _model(nodes, inputs, outputs, name: str):
    onnx = _onnx()
    graph = onnx.helper.make_graph(nodes, name, inputs, outputs)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="sa-mock")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _peak_nodes(prefix: str, src: str, blur: int, sigma: float, window: int, level: float, gain: float) -> list:
    """Nodes computing ``{prefix}score`` = (blurred map is a local maximum) * sigmoid(gain * (blurred - level)).

    The blur makes one peak per compact bright region; the local-maximum test keeps a single cell per region
    (equal neighbours end up within NMS distance of each other).
    """
    onnx = _onnx()
    mk = onnx.helper.make_node
    p = prefix
    return [
        _const(p + "k", _gauss_kernel(blur, sigma)),
        mk("Conv", [src, p + "k"], [p + "blur"], pads=[blur // 2] * 4, name=p + "blur"),
        mk("MaxPool", [p + "blur"], [p + "max"], kernel_shape=[window, window], pads=[window // 2] * 4, name=p + "mp"),
        mk("Equal", [p + "blur", p + "max"], [p + "eq"], name=p + "eq"),
        mk("Cast", [p + "eq"], [p + "peak"], to=onnx.TensorProto.FLOAT, name=p + "cast"),
        _const(p + "level", np.array(level, np.float32)),
        _const(p + "gain", np.array(gain, np.float32)),
        mk("Sub", [p + "blur", p + "level"], [p + "d"], name=p + "sub"),
        mk("Mul", [p + "d", p + "gain"], [p + "dg"], name=p + "mul"),
        mk("Sigmoid", [p + "dg"], [p + "bright"], name=p + "sig"),
        mk("Mul", [p + "peak", p + "bright"], [p + "score"], name=p + "score"),
    ]


def build_yolox_mock():
    """Stand-in for DWPose's ``yolox_l.onnx``: ``input [1,3,640,640]`` -> ``output [1,8400,85]``."""
    onnx = _onnx()
    mk, TP = onnx.helper.make_node, onnx.TensorProto
    nodes = [
        mk("ReduceMean", ["input"], ["gray"], axes=[1], keepdims=1, name="gray"),
        mk("AveragePool", ["gray"], ["cell"], kernel_shape=[32, 32], strides=[32, 32], name="cell"),
        *_peak_nodes("p_", "cell", blur=7, sigma=1.5, window=5, level=150.0, gain=0.2),
        _const("shape400", np.array([1, 400, 1], np.int64)),
        mk("Reshape", ["p_score", "shape400"], ["obj32"], name="obj32"),
        _const("zeros_small_shape", np.array([1, 8000, 1], np.int64)),
        mk("ConstantOfShape", ["zeros_small_shape"], ["obj_small"],
           value=onnx.helper.make_tensor("v", TP.FLOAT, [1], [0.0])),
        mk("Concat", ["obj_small", "obj32"], ["obj"], axis=1, name="obj"),
        _const("shape2", np.array([1, 8400, 2], np.int64)),
        mk("ConstantOfShape", ["shape2"], ["xy"], value=onnx.helper.make_tensor("v", TP.FLOAT, [1], [0.5])),
        mk("ConstantOfShape", ["shape2"], ["wh"], value=onnx.helper.make_tensor("v", TP.FLOAT, [1], [math.log(7.0)])),
        _const("shape1", np.array([1, 8400, 1], np.int64)),
        mk("ConstantOfShape", ["shape1"], ["cls0"], value=onnx.helper.make_tensor("v", TP.FLOAT, [1], [1.0])),
        _const("shape79", np.array([1, 8400, 79], np.int64)),
        mk("ConstantOfShape", ["shape79"], ["cls_rest"], value=onnx.helper.make_tensor("v", TP.FLOAT, [1], [0.0])),
        mk("Concat", ["xy", "wh", "obj", "cls0", "cls_rest"], ["output"], axis=2, name="output"),
    ]
    inp = onnx.helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, 640, 640])
    out = onnx.helper.make_tensor_value_info("output", TP.FLOAT, [1, 8400, 85])
    return _model(nodes, [inp], [out], "yolox_l_mock")


def _simcc_nodes(axis_name: str, reduce_axis: int, length: int, offsets: np.ndarray) -> list:
    """SimCC logits for one axis: the brightness profile x2, shifted per joint, times the joint's factor."""
    onnx = _onnx()
    mk = onnx.helper.make_node
    a = axis_name
    bins = 2 * length
    shift = (-2 * offsets) % bins  # gathering profile[(i + shift) % bins] moves the argmax by -shift/2 pixels
    return [
        mk("ReduceMax", ["gray"], [a + "prof"], axes=[reduce_axis], keepdims=0, name=a + "prof"),  # [1, length]
        _const(a + "ax2", np.array([2], np.int64)),
        mk("Unsqueeze", [a + "prof", a + "ax2"], [a + "prof3"], name=a + "unsq"),
        mk("Concat", [a + "prof3", a + "prof3"], [a + "dup"], axis=2, name=a + "dup"),
        _const(a + "flat", np.array([bins], np.int64)),
        mk("Reshape", [a + "dup", a + "flat"], [a + "up"], name=a + "up"),  # [bins]
        _const(a + "start", np.array(0, np.int64)),
        _const(a + "limit", np.array(bins, np.int64)),
        _const(a + "delta", np.array(1, np.int64)),
        mk("Range", [a + "start", a + "limit", a + "delta"], [a + "range"], name=a + "range"),
        _const(a + "shift", shift.reshape(133, 1).astype(np.int64)),
        mk("Add", [a + "range", a + "shift"], [a + "idx0"], name=a + "add"),
        mk("Mod", [a + "idx0", a + "limit"], [a + "idx"], name=a + "mod"),
        mk("Gather", [a + "up", a + "idx"], [a + "g"], axis=0, name=a + "gather"),  # [133, bins]
        _const(a + "factor", (0.4 * POSE_SCORE_FACTORS).reshape(133, 1).astype(np.float32)),
        mk("Mul", [a + "g", a + "factor"], [a + "gs"], name=a + "scale"),
        _const(a + "ax0", np.array([0], np.int64)),
        mk("Unsqueeze", [a + "gs", a + "ax0"], ["simcc_" + a], name=a + "out"),
    ]


def build_dwpose_mock():
    """Stand-in for ``dw-ll_ucoco_384.onnx``: ``input [1,3,384,288]`` -> ``simcc_x [1,133,576]``,
    ``simcc_y [1,133,768]``."""
    onnx = _onnx()
    TP = onnx.TensorProto
    nodes = [
        onnx.helper.make_node("ReduceMean", ["input"], ["gray"], axes=[1], keepdims=0, name="gray"),  # [1,384,288]
        *_simcc_nodes("x", 1, 288, POSE_TEMPLATE[:, 0]),
        *_simcc_nodes("y", 2, 384, POSE_TEMPLATE[:, 1]),
    ]
    inp = onnx.helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, 384, 288])
    outs = [
        onnx.helper.make_tensor_value_info("simcc_x", TP.FLOAT, [1, 133, 576]),
        onnx.helper.make_tensor_value_info("simcc_y", TP.FLOAT, [1, 133, 768]),
    ]
    return _model(nodes, [inp], outs, "dwpose_mock")


def build_scrfd_mock():
    """Stand-in for antelopev2's ``scrfd_10g_bnkps.onnx``: dynamic ``input.1 [1,3,H,W]``, 9 un-batched outputs."""
    onnx = _onnx()
    mk, TP = onnx.helper.make_node, onnx.TensorProto
    nodes = [mk("ReduceMean", ["input.1"], ["gray"], axes=[1], keepdims=1, name="gray")]
    # landmarks (eyes, nose, mouth corners) in strides from the anchor, i.e. the cell's top-left corner
    kps = np.array([[0.1, 0.1], [0.9, 0.1], [0.5, 0.55], [0.2, 1.0], [0.8, 1.0]], np.float32).reshape(1, 10)
    dist = np.array([[1.5, 1.5, 2.5, 2.5]], np.float32)  # 128-px box centred on the cell centre
    for stride, s_name, b_name, k_name in zip((8, 16, 32), SCRFD_OUTPUTS[:3], SCRFD_OUTPUTS[3:6], SCRFD_OUTPUTS[6:]):
        p = f"s{stride}_"
        nodes.append(mk("AveragePool", ["gray"], [p + "cell"], kernel_shape=[stride] * 2, strides=[stride] * 2,
                        name=p + "pool"))
        if stride == 32:
            nodes += _peak_nodes(p, p + "cell", blur=5, sigma=1.0, window=3, level=0.3, gain=20.0)
        else:
            nodes += [_const(p + "zero", np.array(0.0, np.float32)),
                      mk("Mul", [p + "cell", p + "zero"], [p + "score"], name=p + "zero")]
        nodes += [
            _const(p + "col", np.array([-1, 1], np.int64)),
            mk("Reshape", [p + "score", p + "col"], [p + "s1"], name=p + "col"),
            mk("Concat", [p + "s1", p + "s1"], [p + "s2"], axis=1, name=p + "anchors"),  # two anchors per cell
            mk("Reshape", [p + "s2", p + "col"], [s_name], name=p + "scores"),
            _const(p + "z", np.array(0.0, np.float32)),
            mk("Mul", [s_name, p + "z"], [p + "zeros"], name=p + "zeros"),
            _const(p + "dist", dist),
            mk("Add", [p + "zeros", p + "dist"], [b_name], name=p + "bbox"),
            _const(p + "kps", kps),
            mk("Add", [p + "zeros", p + "kps"], [k_name], name=p + "kpsout"),
        ]
    inp = onnx.helper.make_tensor_value_info("input.1", TP.FLOAT, [1, 3, "height", "width"])
    outs = []
    for names, width in ((SCRFD_OUTPUTS[:3], 1), (SCRFD_OUTPUTS[3:6], 4), (SCRFD_OUTPUTS[6:], 10)):
        for stride, name in zip((8, 16, 32), names):
            outs.append(onnx.helper.make_tensor_value_info(name, TP.FLOAT, [f"n{stride}", width]))
    ordered = [next(o for o in outs if o.name == n) for n in SCRFD_OUTPUTS]
    return _model(nodes, [inp], ordered, "scrfd_mock")


def build_glintr_mock(seed: int = 0):
    """Stand-in for antelopev2's ``glintr100.onnx``: ``input.1 [N,3,112,112]`` -> ``1333 [N,512]``."""
    onnx = _onnx()
    mk, TP = onnx.helper.make_node, onnx.TensorProto
    weight = (np.random.default_rng(seed).standard_normal((588, 512)) / math.sqrt(588)).astype(np.float32)
    # node names must not start with "Sub"/"Mul": insightface would then assume an mxnet model with mean 0, std 1
    nodes = [
        mk("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8], name="pool"),
        mk("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        _const("fc_w", weight),
        mk("Gemm", ["flat", "fc_w"], [GLINTR_OUTPUT], name="fc"),
    ]
    inp = onnx.helper.make_tensor_value_info("input.1", TP.FLOAT, ["None", 3, 112, 112])
    out = onnx.helper.make_tensor_value_info(GLINTR_OUTPUT, TP.FLOAT, ["None", 512])
    return _model(nodes, [inp], [out], "glintr100_mock")


def person_image(height: int, width: int, center: tuple[int, int], size: tuple[int, int], nose: tuple[int, int],
                 background: int = 25, image: Optional[np.ndarray] = None) -> np.ndarray:
    """An RGB uint8 image the mocks read as one person: a light ellipse (``center``, full ``size`` (w, h)) that
    the YOLOX mock detects, with a white dot at ``nose`` where the pose mock puts keypoint 0.

    The ellipse should be at least ~120 x 200 px of the 640-px letterbox to be detected, and the dot within
    ~90 letterbox px of its centre: the mock's box is 224 letterbox px, and a dot outside the pose crop
    leaves the ellipse's flat top as the brightest part (all joints then collapse onto its edge)."""
    import cv2

    img = np.full((height, width, 3), background, np.uint8) if image is None else image
    cv2.ellipse(img, (int(center[0]), int(center[1])), (int(size[0]) // 2, int(size[1]) // 2), 0, 0, 360,
                (205, 200, 195), -1)
    cv2.circle(img, (int(nose[0]), int(nose[1])), 2, (255, 255, 255), -1)
    return img


def _save(model, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return path


def write_dwpose_models(
    directory: str, names: Sequence[str] = ("yolox_l.onnx", "dw-ll_ucoco_384.onnx")
) -> tuple[str, str]:
    """Write the detector and pose mocks into ``directory``; returns (detector path, estimator path)."""
    det = _save(build_yolox_mock(), os.path.join(directory, names[0]))
    pose = _save(build_dwpose_mock(), os.path.join(directory, names[1]))
    return det, pose


def write_antelopev2_pack(insightface_root: str) -> str:
    """Write ``<root>/models/antelopev2/{scrfd_10g_bnkps,glintr100}.onnx`` so that
    ``FaceAnalysis(name='antelopev2', root=<root>)`` loads it; returns the pack folder."""
    pack = os.path.join(insightface_root, "models", "antelopev2")
    _save(build_scrfd_mock(), os.path.join(pack, "scrfd_10g_bnkps.onnx"))
    _save(build_glintr_mock(), os.path.join(pack, "glintr100.onnx"))
    return pack
