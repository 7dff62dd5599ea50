"""Builds the bundled example workflows (workflows/*.json) from the node definitions.

    python -m tools.workflow_builder        # rewrite workflows/*.json

``tests/tools/test_workflows.py`` rebuilds them in memory and fails if the committed files differ, so a change to a
node's inputs cannot silently break the bundled workflows.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Callable

from tools.workflow_tools import UIGraph, load_object_info, object_info_from_classes

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
WORKFLOWS = REPO / "workflows"
REFERENCE = "stableanimator_reference.png"
DRIVING = "stableanimator_driving.mp4"


def load_pack():
    name = "custom_nodes_x_stableanimator_pack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def node_defs() -> dict[str, dict]:
    pack = load_pack()
    ours = object_info_from_classes(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS)
    return {**load_object_info(DATA / "core_object_info.json"), **load_object_info(DATA / "third_party_object_info.json"),
            **ours}


class Layout:
    """A UIGraph with readable positions: nodes are placed in columns, and a Note explains each stage."""

    def __init__(self, defs: dict[str, dict]):
        self.g = UIGraph(defs)

    def add(self, node_type: str, widgets, x: int, y: int, w: int = 320, h: int = 0, title: str = "") -> int:
        nid = self.g.node(node_type, widgets, title=title or None)
        node = self.g.nodes[nid - 1]
        node["pos"] = [x, y]
        node["size"] = [w, h or 60 + 26 * (len(node["inputs"]) + len(widgets or []))]
        return nid

    def note(self, text: str, x: int, y: int, w: int = 320, h: int = 150) -> int:
        nid = self.g.node("Note", [text], inputs=[], outputs=[])
        node = self.g.nodes[nid - 1]
        node.update(pos=[x, y], size=[w, h], color="#432", bgcolor="#653")
        node["properties"] = {}
        return nid

    def link(self, src: int, slot: int, dst: int, name: str) -> None:
        self.g.link(src, slot, dst, name)

    def json(self) -> dict[str, Any]:
        data = self.g.to_json()
        data["extra"] = {"ds": {"scale": 0.6, "offset": [40, 40]}}
        return data


def _common(hjb: bool, upscale_interpolate: bool = False,
            core_sampler: bool = False) -> tuple[Layout, dict[str, int]]:
    L = Layout(node_defs())
    n: dict[str, int] = {}
    L.note("StableAnimator: one reference photo + one driving video -> an identity-preserving animation.\n\n"
           "Models go in ComfyUI/models/stableanimator (a download of huggingface.co/FrancisRing/StableAnimator: "
           "Animation/, DWPose/, SVD/) and ComfyUI/models/insightface/models/antelopev2. "
           "`python -m stableanimator_core download --models ComfyUI/models` fetches them.\n\n"
           "The example inputs are copied into ComfyUI's input folder when the pack loads.", 0, 0, 340, 200)
    # inputs
    n["ref"] = L.add("LoadImage", [REFERENCE, "image"], 0, 220, 320, 320, title="Reference photo")
    n["video"] = L.add("LoadVideo", [DRIVING, "image"], 0, 570, 320, 320, title="Driving video")
    n["comp"] = L.add("GetVideoComponents", [], 0, 920)
    L.link(n["video"], 0, n["comp"], "video")
    L.note("1. Inputs. Frame Reference fits the photo to the video's size (width/height feed Conditioning): "
           "stretch squashes it as the official pipeline does; crop (on the person or face) or pad keep its "
           "proportions. StableAnimator was trained at 512x512 and 576x1024.", 0, 1030, 320, 150)
    # preprocessing: everything that looks at the reference gets the framed one
    n["frame"] = L.add("StableAnimatorFrameReference", [512, 512, "stretch", "center", "DWPose/yolox_l.onnx", "auto"],
                       380, 0, 340)
    L.link(n["ref"], 0, n["frame"], "reference")
    n["pose"] = L.add("StableAnimatorDWPose", ["DWPose/yolox_l.onnx", "DWPose/dw-ll_ucoco_384.onnx", "global", "empty",
                                               "largest", "skeleton", "auto", "pack", 512, 512], 380, 420, 340)
    L.link(n["comp"], 0, n["pose"], "driving")
    L.link(n["frame"], 0, n["pose"], "reference")
    L.link(n["frame"], 1, n["pose"], "width")  # skeletons and masks kept at the generation size
    L.link(n["frame"], 2, n["pose"], "height")
    n["face"] = L.add("StableAnimatorFaceEmbed", ["identity", "auto", "training", "error", "pack"], 380, 270, 340)
    L.link(n["frame"], 0, n["face"], "reference")
    L.note("2. Preprocessing. DWPose draws the driving skeletons aligned to the reference body (check the preview: "
           "misalignment is the main cause of identity loss; try align = limbs). Face Embed takes the reference's "
           "ArcFace identity (antelopev2). The DWPose node grows a skeleton preview once it has run, and says whether the "
           "first driving pose matches the reference (if not: align = limbs, or trim the video's start).",
           380, 1130, 340, 170)
    # models and conditioning
    n["model"] = L.add("StableAnimatorModelLoader", ["Animation/unet.pth", "Animation/pose_net.pth",
                                                     "Animation/face_encoder.pth", "stableanimator/SVD", "auto", "default",
                                                     False],
                       780, 0, 340)
    n["clip"] = L.add("StableAnimatorCLIPEncode", [], 780, 220, 340)
    L.link(n["model"], 0, n["clip"], "model")
    L.link(n["frame"], 0, n["clip"], "reference")
    if core_sampler:
        _core_sampling(L, n, hjb)
    else:
        _pack_sampling(L, n)
    if hjb and not core_sampler:
        n["hjb"] = L.add("StableAnimatorHJBSettings", ["Animation/glintr100_torch.pth", 3, 0, 20, 0.1,
                                                        "memory_bounded", 4, "tiled", "pack"], 1180, 720, 340)
        L.link(n["hjb"], 0, n["sampler"], "hjb")
        L.link(n["pose"], 2, n["sampler"], "face_masks")
        L.note("HJB face optimisation (the paper's inference-time identity booster): at steps 0-20 the predicted "
               "frames' faces are pulled towards the reference identity with 3 Adam iterations. Face masks come from "
               "the DWPose node. memory_bounded gives the official result with memory independent of the frame "
               "count; it multiplies sampling time.", 1180, 980, 340, 170)
    # output and readout
    frames = n["decode"]
    if upscale_interpolate:
        up_model = L.add("UpscaleModelLoader", ["RealESRGAN_x2.pth"], 1180, 1180, 340)
        upscale = L.add("ImageUpscaleWithModel", [], 1580, 1180, 300)
        L.link(up_model, 0, upscale, "upscale_model")
        L.link(n["decode"], 0, upscale, "image")
        frames = L.add("RIFE VFI", ["rife47.pth", 10, 2, True, True, 1.0], 1580, 1320, 300)
        L.link(upscale, 0, frames, "frames")
        L.note("6. Upscale x2 (core Upscale Model Loader / Upscale Image (using Model), e.g. RealESRGAN_x2.pth in "
               "models/upscale_models) and RIFE frame interpolation x2 (needs the ComfyUI-Frame-Interpolation pack: "
               "github.com/Fannovel16/ComfyUI-Frame-Interpolation; it fetches rife47.pth itself). Twice the frames: "
               "the video is saved at 16 fps.", 1180, 1320, 340, 190)
    n["video_out"] = L.add("CreateVideo", [16.0 if upscale_interpolate else 8.0], 1580, 0, 300)
    L.link(frames, 0, n["video_out"], "images")
    if not upscale_interpolate:
        L.link(n["comp"], 2, n["video_out"], "fps")
    n["save"] = L.add("SaveVideo", ["StableAnimator/animation", "auto", "auto"], 1580, 140, 300)
    L.link(n["video_out"], 0, n["save"], "video")
    n["score"] = L.add("StableAnimatorIdentityScore", ["auto"], 1580, 420, 300)
    L.link(n["decode"], 0, n["score"], "frames")
    L.link(n["face"], 0, n["score"], "face")
    n["plot"] = L.add("PreviewImage", [], 1580, 560, 420, 260, title="Identity over frames")
    L.link(n["score"], 2, n["plot"], "images")
    L.note("5. Output: an H.264 mp4 in output/StableAnimator/ at the driving video's frame rate. The identity score "
           "is ArcFace cosine similarity to the reference per frame (the paper's CSIM); compare seeds, HJB on/off, "
           "alignment modes.", 1580, 840, 420, 130)
    return L, n


def _link_conditioning_inputs(L: Layout, n: dict[str, int]) -> None:
    for name, src in (("model", n["model"]), ("reference", n["frame"]), ("clip_embeds", n["clip"]),
                      ("face", n["face"])):
        L.link(src, 0, n["cond"], name)
    L.link(n["frame"], 1, n["cond"], "width")
    L.link(n["frame"], 2, n["cond"], "height")
    L.link(n["pose"], 0, n["cond"], "pose_images")


def _pack_sampling(L: Layout, n: dict[str, int]) -> None:
    """Conditioning, sampling and decoding with the pack's own sampler."""
    # official values; then id_strength/start/end, pose_strength/start/end, first_frame_fix
    n["cond"] = L.add("StableAnimatorConditioning", [512, 512, 7, 127, 0.02, 23123134, "fixed",
                                                     1.0, 0.0, 1.0, 1.0, 0.0, 1.0, False], 780, 340, 340)
    _link_conditioning_inputs(L, n)
    L.note("3. Conditioning: CLIP and VAE encodings of the reference, face tokens, skeleton frames. id_strength / "
           "pose_strength (with start/end percent of the steps) weigh identity against pose; first_frame_fix "
           "replaces SVD's blurry first frame.", 780, 910, 340, 130)
    # sampling and decoding
    n["sampler"] = L.add("StableAnimatorSampler", [23123134, "fixed", 25, 3.0, 16, 4, 0.0, False, True],
                         1180, 0, 340)
    L.link(n["model"], 0, n["sampler"], "model")
    L.link(n["cond"], 0, n["sampler"], "conditioning")
    L.link(n["cond"], 1, n["sampler"], "latent")
    n["decode"] = L.add("StableAnimatorDecode", [4], 1180, 420, 340)
    L.link(n["model"], 0, n["decode"], "model")
    L.link(n["sampler"], 0, n["decode"], "latent")
    L.note("4. Sampling: SVD Euler, guidance 3, windows of 16 frames overlapping by 4 for long videos (lower "
           "tile_size to save VRAM). Decode: frames decoded 4 at a time (larger = smoother, more VRAM).",
           1180, 560, 340, 130)


def _core_sampling(L: Layout, n: dict[str, int], hjb: bool = False) -> None:
    """Conditioning, sampling and decoding with core KSampler (euler, karras: the official sampler)."""
    # the pack conditioning's values, then tile_size, tile_overlap, official_noise
    n["cond"] = L.add("StableAnimatorKSamplerConditioning", [512, 512, 7, 127, 0.02, 23123134, "fixed", 1.0, 0.0, 1.0,
                                                             1.0, 0.0, 1.0, False, 16, 4, True], 780, 340, 340)
    _link_conditioning_inputs(L, n)
    L.note("3. Conditioning for core samplers: positive (reference, face tokens, skeletons), negative (the official "
           "unconditional branch) and the latent. official_noise: KSampler's seed draws the official initial noise "
           "(use the same seed as noise_seed). tile_size/tile_overlap: the official frame windows, applied inside "
           "every model evaluation.", 780, 1010, 340, 170)
    n["native"] = L.add("StableAnimatorModelForKSampler", [True], 1180, 0, 340)
    L.link(n["model"], 0, n["native"], "stableanimator")
    n["sampler"] = L.add("KSampler", [23123134, "fixed", 25, 3.0, "euler", "karras", 1.0], 1180, 150, 340)
    model = n["native"]
    if hjb:
        n["hjb"] = L.add("StableAnimatorHJBSettings", ["Animation/glintr100_torch.pth", 3, 0, 20, 0.1,
                                                        "memory_bounded", 4, "tiled", "pack"], 1180, 860, 340)
        n["hook"] = L.add("StableAnimatorHJBHook", [], 1180, 1180, 340)
        for name, src, slot in (("model", model, 0), ("stableanimator", n["model"], 0), ("positive", n["cond"], 0),
                                ("hjb", n["hjb"], 0), ("face_masks", n["pose"], 2)):
            L.link(src, slot, n["hook"], name)
        L.note("HJB face optimisation as a sampler hook: after guidance, the predicted clean latents of steps 0-20 are "
               "optimised towards the reference identity. With euler it is the pack's HJB; face masks come from the "
               "DWPose node.", 1180, 1390, 340, 130)
        model = n["hook"]
    L.link(model, 0, n["sampler"], "model")
    L.link(n["cond"], 0, n["sampler"], "positive")
    L.link(n["cond"], 1, n["sampler"], "negative")
    L.link(n["cond"], 2, n["sampler"], "latent_image")
    n["decode"] = L.add("StableAnimatorDecode", [4], 1180, 540, 340)
    L.link(n["model"], 0, n["decode"], "model")
    L.link(n["sampler"], 0, n["decode"], "latent")
    L.note("4. Core KSampler: euler + karras with cfg 3 is the official sampler (the same video as "
           "StableAnimator Sampler). Any other sampler/scheduler, SamplerCustom (e.g. AlignYourStepsScheduler SVD) "
           "and model patches (EasyCache, VideoLinearCFGGuidance for the guidance ramp) work too.",
           1180, 680, 340, 150)


def basic() -> dict[str, Any]:
    return _common(hjb=False)[0].json()


def hjb() -> dict[str, Any]:
    return _common(hjb=True)[0].json()


def ksampler() -> dict[str, Any]:
    return _common(hjb=False, core_sampler=True)[0].json()


def ksampler_hjb() -> dict[str, Any]:
    return _common(hjb=True, core_sampler=True)[0].json()


def upscale_interpolate() -> dict[str, Any]:
    return _common(hjb=False, upscale_interpolate=True)[0].json()


WORKFLOWS_BUILT: dict[str, Callable[[], dict[str, Any]]] = {
    "stableanimator_basic.json": basic,
    "stableanimator_hjb.json": hjb,
    "stableanimator_upscale_rife.json": upscale_interpolate,
    "stableanimator_ksampler.json": ksampler,
    "stableanimator_ksampler_hjb.json": ksampler_hjb,
}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"


def main() -> None:
    for name, build in WORKFLOWS_BUILT.items():
        (WORKFLOWS / name).write_text(render(build()))
        print("wrote", WORKFLOWS / name)


if __name__ == "__main__":
    main()
