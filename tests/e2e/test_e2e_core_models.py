"""ComfyUI's own VAE and CLIP vision on the pack's nodes, in a real ComfyUI; a core sampler's LATENT decoded by the
pack's Decode and by core VAEDecode; another core model run between two StableAnimator prompts.

The core VAE is SVD-xt's full-size architecture with random weights (ComfyUI builds the SVD VAE only at full size),
written in ComfyUI's key layout and loaded by core VAELoader. The same weights in the diffusers layout sit in a
second SVD folder, so "core VAE" and "the pack's VAE" are compared on equal weights. The CLIP vision model is
ComfyUI's ClipVisionModel built from the tiny image encoder's config and weights (tests/e2e/core_loaders_pack).

Skipped unless COMFYUI_DIR is set (see tests/e2e/conftest.py). 64x128, 4 frames, 2 steps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from tests.e2e.comfy_server import ComfyServer
from tests.e2e.conftest import REPO_ROOT, pack_server_running
from tests.e2e.small_settings import SMALL_INPUTS
from tools.workflow_tools import convert_ui_to_api

WORKFLOW = REPO_ROOT / "example_workflows" / "StableAnimator 5 - core KSampler.json"
TEST_PACK = Path(__file__).parent / "core_loaders_pack"
FRAMES = 4
FULL_SVD = "diffusers/SVD-fullvae"  # the pack's layout of the core VAE's weights
CORE_VAE_FILE = "svd_xt_vae_random.safetensors"
SVD_XT_VAE = {"_class_name": "AutoencoderKLTemporalDecoder", "block_out_channels": [128, 256, 512, 512],
              "down_block_types": ["DownEncoderBlock2D"] * 4, "layers_per_block": 2, "latent_channels": 4,
              "in_channels": 3, "out_channels": 3, "scaling_factor": 0.18215, "force_upcast": True}
MEASURED: dict[str, Any] = {}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src, target_is_directory=src.is_dir())


@pytest.fixture(scope="module")
def core_models_dir(tmp_path_factory, tiny_models_dir) -> Path:
    from diffusers import AutoencoderKLTemporalDecoder
    from safetensors.torch import save_file

    from stableanimator_core.loading.core_vae_layout import diffusers_to_comfy

    root = tmp_path_factory.mktemp("core-models")
    for sub in ("stableanimator", "insightface"):
        _link(tiny_models_dir / sub, root / sub)
    tiny_svd = tiny_models_dir / "stableanimator" / "SVD"
    full = root / FULL_SVD
    for sub in ("unet", "image_encoder", "scheduler", "feature_extractor", "model_index.json"):
        _link(tiny_svd / sub, full / sub)
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(**{k: v for k, v in SVD_XT_VAE.items() if not k.startswith("_")})
    with torch.no_grad():  # SVD's VAE has an identity quant_conv (the original model has none)
        vae.quant_conv.weight.copy_(torch.eye(8).reshape(8, 8, 1, 1))
        vae.quant_conv.bias.zero_()
    sd = {k: v.half().contiguous() for k, v in vae.state_dict().items()}
    (full / "vae").mkdir(parents=True)
    (full / "vae" / "config.json").write_text(json.dumps(SVD_XT_VAE))
    save_file(sd, str(full / "vae" / "diffusion_pytorch_model.fp16.safetensors"))
    (root / "vae").mkdir()
    save_file({k: v.contiguous() for k, v in diffusers_to_comfy(sd).items()}, str(root / "vae" / CORE_VAE_FILE))
    _link(tiny_svd / "image_encoder" / "config.json", root / "clip_vision" / "tiny" / "config.json")
    _link(tiny_svd / "image_encoder" / "model.safetensors", root / "clip_vision" / "tiny" / "model.safetensors")
    return root


@pytest.fixture(scope="module")
def server(comfy_env, core_models_dir) -> Iterator[ComfyServer]:
    # ComfyUI stores CLIP vision weights in fp16 unless told otherwise (model_management.text_encoder_dtype), ~1e-3
    # off the pack's fp32 encoder; compared here at equal precision
    with pack_server_running(comfy_env, "comfyui_core_models_server", core_models_dir,
                             extra_packs={"stableanimator_e2e_loaders": TEST_PACK},
                             extra_args=("--disable-api-nodes", "--fp32-text-enc")) as srv:
        yield srv
    if MEASURED:
        print("\ncore VAE / CLIP vision e2e measurements:", json.dumps(MEASURED))


def _ids(prompt: dict[str, Any], class_type: str) -> str:
    found = [k for k, v in prompt.items() if v["class_type"] == class_type]
    assert len(found) == 1, (class_type, found)
    return found[0]


def _prompt(server: ComfyServer, svd: str, core: bool, batch_cfg: bool = True) -> dict[str, Any]:
    """The KSampler workflow at 64x128, 4 frames, 2 steps, with the LATENT and the decoded frames saved as tensors;
    core=True: core VAELoader's VAE on Conditioning and Decode, the tiny core CLIP vision on CLIP Encode, and core
    VAEDecode beside the pack's Decode."""
    prompt = convert_ui_to_api(json.loads(WORKFLOW.read_text()), server.object_info())
    for nid, node in prompt.items():
        node["inputs"].update(SMALL_INPUTS.get(node["class_type"], {}))
    prompt[_ids(prompt, "StableAnimatorModelLoader")]["inputs"]["svd"] = svd
    prompt[_ids(prompt, "StableAnimatorModelForKSampler")]["inputs"]["batch_cfg"] = batch_cfg
    components = _ids(prompt, "GetVideoComponents")
    prompt["9000"] = {"class_type": "ImageFromBatch", "inputs": {"image": [components, 0], "batch_index": 0,
                                                                   "length": FRAMES}}
    for node in prompt.values():  # every user of the driving frames takes the first FRAMES
        for name, value in node["inputs"].items():
            if value == [components, 0] and node is not prompt["9000"]:
                node["inputs"][name] = ["9000", 0]
    sampler, decode = _ids(prompt, "KSampler"), _ids(prompt, "StableAnimatorDecode")
    prompt[decode]["inputs"]["decode_chunk_size"] = FRAMES  # one chunk: the frames core VAEDecode decodes together
    prompt["9001"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "core/latent"}}
    prompt["9002"] = {"class_type": "SaveImageTensor", "inputs": {"images": [decode, 0], "name": "pack_decode"}}
    if core:
        prompt["9003"] = {"class_type": "VAELoader", "inputs": {"vae_name": CORE_VAE_FILE}}
        prompt["9004"] = {"class_type": "TinyCLIPVisionLoader", "inputs": {"folder": "clip_vision/tiny"}}
        prompt[_ids(prompt, "StableAnimatorKSamplerConditioning")]["inputs"]["vae"] = ["9003", 0]
        prompt[decode]["inputs"]["vae"] = ["9003", 0]
        prompt[_ids(prompt, "StableAnimatorCLIPEncode")]["inputs"]["clip_vision"] = ["9004", 0]
        prompt["9005"] = {"class_type": "VAEDecode", "inputs": {"samples": [sampler, 0], "vae": ["9003", 0]}}
        prompt["9006"] = {"class_type": "SaveImageTensor", "inputs": {"images": ["9005", 0], "name": "core_decode"}}
    return prompt


def _tensors(result, suffix: str, key: str, name: str = "") -> torch.Tensor:
    from safetensors.torch import load_file

    files = [p for p in result.files if p.suffix == suffix and p.name.startswith(name)]
    assert len(files) == 1, result.files
    return load_file(str(files[0]))[key]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def runs(server) -> dict[str, Any]:
    """pack: the pack's VAE and CLIP encoder (the SVD folder with the full-size VAE); core: ComfyUI's VAE and CLIP
    vision on the pack's nodes, with the pack's own SVD folder (tiny VAE) left unused; tiny: the tiny VAE."""
    return {name: server.run_prompt(_prompt(server, svd, core), timeout=900).raise_for_status()
            for name, svd, core in (("pack", FULL_SVD, False), ("core", "stableanimator/SVD", True),
                                    ("tiny", "stableanimator/SVD", False))}


def test_core_vae_and_clip_vision_give_the_packs_result(runs, server):
    latent = {k: _tensors(r, ".latent", "latent_tensor") for k, r in runs.items()}
    frames = {k: _tensors(r, ".safetensors", "images", "pack_decode") for k, r in runs.items()}
    assert latent["core"].shape == (FRAMES, 4, 16, 8) and frames["core"].shape == (FRAMES, 128, 64, 3)
    assert torch.isfinite(latent["core"]).all() and frames["core"].std() > 1e-3
    MEASURED["core_vs_pack"] = {"latent_rel": _rel(latent["core"], latent["pack"]),
                                "frames_rel": _rel(frames["core"], frames["pack"])}
    assert _rel(latent["core"], latent["pack"]) <= 1e-4
    assert _rel(frames["core"], frames["pack"]) <= 1e-4
    # the core VAE was used, not the Model Loader's own (tiny) VAE: that one gives another video
    assert _rel(frames["tiny"], frames["pack"]) > 0.1
    log = server.log_text()
    assert "StableAnimator: using the connected core VAE" in log
    assert re.search(r"Requested to load CLIPVisionModelProjection", log), "the core CLIP vision model never loaded"


def test_a_core_samplers_latent_decodes_with_core_vaedecode_and_the_packs_decode(runs):
    core_decode = _tensors(runs["core"], ".safetensors", "images", "core_decode")
    pack_decode = _tensors(runs["core"], ".safetensors", "images", "pack_decode")
    assert core_decode.shape == pack_decode.shape == (FRAMES, 128, 64, 3)
    MEASURED["core_vaedecode_vs_pack_decode"] = _rel(core_decode, pack_decode)
    # two implementations of the temporal decoder (ComfyUI's and diffusers') on the same weights and frames
    assert _rel(core_decode, pack_decode) <= 1e-4


def test_another_core_model_between_two_stableanimator_prompts(runs, server):
    """A core-only prompt (ComfyUI's VAE encodes and decodes an image) between two StableAnimator prompts: the
    memory manager loads the core model, then StableAnimator's MODEL again, with the same result."""
    first = _tensors(runs["core"], ".latent", "latent_tensor")
    log_start = len(server.log_text())
    other = {"1": {"class_type": "LoadImage", "inputs": {"image": "stableanimator_reference.png"}},
             "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                          "width": 64, "height": 64, "crop": "center"}},
             "3": {"class_type": "VAELoader", "inputs": {"vae_name": CORE_VAE_FILE}},
             "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["3", 0]}},
             "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["3", 0]}},
             "6": {"class_type": "SaveImageTensor", "inputs": {"images": ["5", 0], "name": "other"}}}
    between = server.run_prompt(other, timeout=600).raise_for_status()
    assert torch.isfinite(_tensors(between, ".safetensors", "images", "other")).all()
    # batch_cfg off: the same video (one UNet call per conditioning), so the sampler runs again instead of its
    # cached output being reused
    again = server.run_prompt(_prompt(server, "stableanimator/SVD", True, batch_cfg=False), timeout=900)
    second = _tensors(again.raise_for_status(), ".latent", "latent_tensor")
    MEASURED["second_prompt_rel"] = _rel(second, first)
    # one batched UNet call per window or one per conditioning: float rounding differs (GEMM sizes), ~4e-5 here
    assert _rel(second, first) <= 1e-4
    # (on a CPU nothing has to be evicted; on a GPU the memory manager frees what the other model needs)
    loads = re.findall(r"Requested to load (\w+)", server.log_text()[log_start:])
    assert "AutoencodingEngine" in loads and "StableAnimatorComfyModel" in loads, loads
    assert loads.index("AutoencodingEngine") < loads.index("StableAnimatorComfyModel"), loads


@pytest.mark.parametrize("storage", ["default", "fp8"])
def test_comfyuis_partial_loading_streams_the_model_and_computes_the_same(comfy_env, tiny_models_dir, storage):
    """ComfyUI's ModelPatcher in low-VRAM mode (a third of the weights' size allowed): the layers it does not load
    are ones it streams (ComfyUI's cast-on-use classes), the output equals the fully loaded model's, and the memory
    ComfyUI reserves per evaluation is one window's need, not its area formula over all frames."""
    import subprocess
    import sys

    script = Path(__file__).parent / "partial_load_check.py"
    proc = subprocess.run([comfy_env["python"] or sys.executable, str(script), comfy_env["comfyui_dir"],
                           str(REPO_ROOT), str(tiny_models_dir), *(["fp8"] if storage == "fp8" else [])],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    found = json.loads(lines[-1][len("RESULT "):])
    MEASURED[f"partial_loading_{storage}"] = found
    assert found["model_lowvram"] and found["streamed"] > 0 and found["loaded"] > 0
    assert found["left_unhandled"] == []
    assert found["refuses_stateful_layers"]
    assert found["max_abs_diff"] == 0.0 and found["finite"]
    assert found["memory_required"] == found["expected"]
    assert found["long_video_ours"] < found["long_video_area_formula"] / 100  # 100 frames at 512x512
