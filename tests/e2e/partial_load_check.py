"""Run by tests/e2e/test_e2e_core_models.py in ComfyUI's Python: ComfyUI's own ModelPatcher partially loads the
StableAnimator MODEL (its low-VRAM mode) and the model computes what it computes fully loaded.

    python partial_load_check.py COMFYUI_DIR PACK_DIR MODELS_DIR [fp8]  ->  one JSON line of findings
    (fp8: the UNet's weights stored in fp8 first, the loader's weight_storage option)

On a CPU, load and offload device are the same, so a layer ComfyUI leaves unloaded would still run here; the check
is therefore on what ComfyUI decided (every layer it did not load is one it streams) and on the numbers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def main(comfy_dir: str, pack_dir: str, models_dir: str, fp8: bool = False) -> dict:
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import torch
    import comfy.model_base

    spec = importlib.util.spec_from_file_location("stableanimator_pack", Path(pack_dir) / "__init__.py",
                                                  submodule_search_locations=[pack_dir])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["stableanimator_pack"] = pack
    spec.loader.exec_module(pack)
    from stableanimator_pack.nodes import comfy_model as cm
    from stableanimator_pack.stableanimator_core.loading.components import load_models
    from stableanimator_pack.stableanimator_core.loading.layout import ModelLayout
    from stableanimator_pack.stableanimator_core.models.acceleration import store_weights_fp8
    from stableanimator_pack.stableanimator_core.sampling.controls import OFFICIAL
    from stableanimator_pack.stableanimator_core.sampling.frame_batch import PoseFrames, WindowSettings
    from stableanimator_pack.stableanimator_core.sampling.memory import sampling_memory_bytes

    models = load_models(ModelLayout.from_models_dir(models_dir))
    if fp8:
        store_weights_fp8(models.unet)
    patcher = cm.make_model_patcher(models.unet, models.pose_net)
    dm = patcher.model.diffusion_model
    frames, g = 5, torch.Generator().manual_seed(0)
    x = torch.randn(2 * frames, 4, 16, 8, generator=g)
    kwargs = dict(
        reference_latents=torch.randn(2 * frames, 4, 16, 8, generator=g),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]).expand(2 * frames, -1),
        pose=PoseFrames(torch.rand(frames, 3, 128, 64, generator=g) * 2 - 1),
        pose_enabled=torch.cat([torch.ones(frames), torch.zeros(frames)]),
        windows=WindowSettings(3, 1), num_video_frames=frames, terms=(OFFICIAL, OFFICIAL))
    context = torch.randn(2 * frames, 5, models.unet.config.cross_attention_dim, generator=g)
    t = torch.full((2 * frames,), 0.25 * float(torch.tensor(700.0).log()))

    def run():
        with torch.no_grad():
            return dm(x, t, context, transformer_options={}, **kwargs)

    cpu = torch.device("cpu")
    patcher.patch_model(device_to=cpu, lowvram_model_memory=0)
    full = run()
    patcher.unpatch_model(device_to=cpu)
    budget = patcher.model_size() // 3
    patcher.patch_model(device_to=cpu, lowvram_model_memory=budget)
    holders = [m for m in dm.modules() if any(True for _ in m.parameters(recurse=False))]
    streamed = [m for m in holders if getattr(m, "comfy_cast_weights", False)]
    loaded = [m for m in holders if getattr(m, "comfy_patched_weights", False)]
    left = [type(m).__name__ for m in holders if m not in streamed and m not in loaded and m not in dm._unstreamed]
    partial = run()
    window = [(3, frames)]
    ours = patcher.model.memory_required([2 * frames, 4, 16, 8], {cm.WINDOWS_SHAPE_KEY: window})
    expected = sampling_memory_bytes(models.unet.config, 64, 128, frames, 3, True, dm.dtype)
    long_ours = patcher.model.memory_required([200, 4, 64, 64], {cm.WINDOWS_SHAPE_KEY: [(16, 100)]})
    long_core = comfy.model_base.BaseModel.memory_required(patcher.model, [200, 4, 64, 64], {})
    # a ComfyUI whose cast-on-use Linear keeps more state per instance: the plain class stays
    import comfy.ops

    ops, plain_cast = comfy.ops.disable_weight_init, comfy.ops.disable_weight_init.Linear

    class StatefulLinear(plain_cast):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.quant_state = None

    ops.Linear = StatefulLinear
    cm._cast_class.cache_clear()
    try:
        refuses_stateful = cm._cast_class(torch.nn.Linear) is None and cm._cast_class(torch.nn.Conv2d) is not None
    finally:
        ops.Linear = plain_cast
        cm._cast_class.cache_clear()
    return {"refuses_stateful_layers": refuses_stateful, "model_lowvram": bool(patcher.model.model_lowvram), "layers": len(holders), "streamed": len(streamed),
            "loaded": len(loaded), "left_unhandled": left[:5], "max_abs_diff": float((partial - full).abs().max()),
            "finite": bool(torch.isfinite(full).all()), "memory_required": ours, "expected": expected,
            "long_video_ours": long_ours, "long_video_area_formula": long_core}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(*sys.argv[1:4], fp8=sys.argv[4:5] == ["fp8"])))
