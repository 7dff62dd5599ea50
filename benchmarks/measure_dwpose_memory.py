"""Peak RAM of the DWPose node for a 12-megapixel reference photo, in a fresh process per frame count.

    python benchmarks/measure_dwpose_memory.py --frames 300 [--width 512 --height 512]

Mock DWPose ONNX models (``stableanimator_core.testing.onnx_mocks``; real onnxruntime), a 4000x3000 reference with
a person, 512x512 driving frames as a ComfyUI IMAGE batch. Prints the peak resident set (``ru_maxrss``) of the
process minus the resident set just before the node runs (inputs already built), and the output sizes. The node
is imported the way ComfyUI imports the pack.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=512, help="generation width given to the node (new code)")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--legacy", action="store_true", help="call the node without width/height (code before the fix)")
    a = p.parse_args()
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from stableanimator_core.testing import onnx_mocks

    models = Path(tempfile.mkdtemp()) / "models"
    onnx_mocks.write_dwpose_models(str(models / "stableanimator" / "DWPose"))
    os.environ["STABLEANIMATOR_MODELS_DIR"] = str(models)
    name = "custom_nodes_x_stableanimator_pack"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)

    ref = onnx_mocks.person_image(3000, 4000, center=(2000, 1500), size=(1200, 2400), nose=(2000, 1100))
    drive = onnx_mocks.person_image(512, 512, center=(256, 256), size=(200, 400), nose=(256, 200))
    reference = torch.from_numpy(ref[None].astype(np.float32) / 255.0)
    driving = torch.from_numpy(drive[None].astype(np.float32) / 255.0).repeat(a.frames, 1, 1, 1)
    before = rss_bytes()
    node = pack.nodes.NODE_CLASS_MAPPINGS["StableAnimatorDWPose"]()
    args = dict(detector="DWPose/yolox_l.onnx", estimator="DWPose/dw-ll_ucoco_384.onnx", align="global",
                missing_person="empty", several_people="largest", face_masks_from="skeleton", provider="cpu")
    if not a.legacy:
        args.update(width=a.width, height=a.height)
    skeletons, _keypoints, masks = node.extract(driving, reference, **args)["result"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"frames": a.frames, "reference": "4000x3000", "legacy": a.legacy,
                      "skeletons": list(skeletons.shape), "masks": list(masks.shape),
                      "rss_before_node_gib": before / 2**30, "peak_rss_gib": peak / 2**30,
                      "node_peak_growth_gib": (peak - before) / 2**30}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
