"""Builds the bundled example workflows (example_workflows/*.json and their .jpg thumbnails) from the node
definitions.

    python -m tools.workflow_builder        # rewrite example_workflows/*.json and *.jpg

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
WORKFLOWS = REPO / "example_workflows"
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


# Geometry of the ComfyUI front end's nodes (litegraph, front ends 1.27 to 1.58 measured alike): title bar above
# `pos`, socket rows, then one row per widget.
TITLE_H, SLOT_H, WIDGET_H, BODY_PAD = 30, 20, 24, 14
NODE_GAP, COLUMN_GAP = 24, 50
# Content the front end adds under the widgets (image/video previews, the pose preview, the sampler's live preview,
# outputs shown after a run), reserved so that a grown node never reaches its neighbour. Heights are for the
# nodes' widths here and the workflows' square 512x512 output.
# The nodes that report text (DWPose's first-pose check, the identity summary) grow a panel of at most 240 px
# (web/js/stableanimator.js) plus the widget's margin.
TEXT_PANEL = 250
GROWN: dict[str, int] = {"LoadImage": 240, "LoadVideo": 330, "SaveVideo": 320, "PreviewImage": 240,
                         "StableAnimatorDWPose": 360 + TEXT_PANEL, "StableAnimatorIdentityScore": TEXT_PANEL,
                         "StableAnimatorSampler": 330, "KSampler": 330}
# ComfyUI-Manager finds a missing node's pack from these properties (registry id, and the GitHub repo as fallback).
NODE_SOURCES: dict[str, dict[str, str]] = {
    "RIFE VFI": {"cnr_id": "comfyui-frame-interpolation", "aux_id": "Fannovel16/ComfyUI-Frame-Interpolation"},
}
CORE_SOURCE = {"cnr_id": "comfy-core"}


class Layout:
    """A UIGraph laid out in columns: each node goes under the previous one of its column, sized from its sockets
    and widgets (plus what grows into it, GROWN), so that nothing overlaps; a Note explains each stage."""

    def __init__(self, defs: dict[str, dict], widths: tuple[int, ...]):
        self.g = UIGraph(defs)
        self.defs = defs
        self.widths = widths
        self.x = [sum(widths[:i]) + COLUMN_GAP * i for i in range(len(widths))]
        self.y = [0] * len(widths)

    def _place(self, nid: int, column: int, height: int) -> None:
        node = self.g.nodes[nid - 1]
        node["pos"] = [self.x[column], self.y[column] + TITLE_H]
        node["size"] = [self.widths[column], height]
        self.y[column] += TITLE_H + height + NODE_GAP

    def add(self, node_type: str, widgets, column: int, title: str = "") -> int:
        nid = self.g.node(node_type, widgets, title=title or None)
        node = self.g.nodes[nid - 1]
        sockets = max(len(node["inputs"]), len(node["outputs"]))
        height = BODY_PAD + SLOT_H * sockets + WIDGET_H * len(widgets or []) + GROWN.get(node_type, 0)
        ours = node_type.startswith("StableAnimator")
        source = NODE_SOURCES.get(node_type) or ({} if ours or node_type not in self._core else CORE_SOURCE)
        node["properties"] = {**source, "Node name for S&R": node_type}
        self._place(nid, column, height)
        return nid

    @property
    def _core(self) -> set[str]:
        return set(load_object_info(DATA / "core_object_info.json"))

    def note(self, text: str, column: int, lines: int) -> int:
        nid = self.g.node("Note", [text], inputs=[], outputs=[])
        node = self.g.nodes[nid - 1]
        node.update(color="#432", bgcolor="#653")
        node["properties"] = {}
        self._place(nid, column, 30 + 16 * lines)
        return nid

    def link(self, src: int, slot: int, dst: int, name: str) -> None:
        self.g.link(src, slot, dst, name)

    def json(self) -> dict[str, Any]:
        data = self.g.to_json()
        data["extra"] = {"ds": {"scale": 0.55, "offset": [40, 60]}}
        return data


DOWNLOAD_COMMAND = "python custom_nodes/ComfyUI-StableAnimator/download_models.py"


def _common(hjb: bool, upscale_interpolate: bool = False, size: int = 512, steps: int = 25,
            core_sampler: bool = False) -> tuple[Layout, dict[str, int]]:
    L = Layout(node_defs(), widths=(340, 360, 360, 360, 360))
    n: dict[str, int] = {}
    L.note("StableAnimator: one reference photo + one driving video -> an identity-preserving animation.\n\n"
           "Models go in ComfyUI/models/stableanimator (a download of huggingface.co/FrancisRing/StableAnimator: "
           "Animation/, DWPose/, SVD/) and ComfyUI/models/insightface/models/antelopev2. From the ComfyUI folder, "
           f"`{DOWNLOAD_COMMAND}` fetches them.\n\n"
           "The example inputs are copied into ComfyUI's input folder when the pack loads.", 0, 11)
    # inputs
    n["ref"] = L.add("LoadImage", [REFERENCE, "image"], 0, title="Reference photo")
    n["video"] = L.add("LoadVideo", [DRIVING, "image"], 0, title="Driving video")
    n["comp"] = L.add("GetVideoComponents", [], 0)
    L.link(n["video"], 0, n["comp"], "video")
    L.note("1. Inputs. Frame Reference fits the photo to the video's size (width/height feed Conditioning): "
           "stretch squashes it as the official pipeline does; crop (on the person or face) or pad keep its "
           "proportions. StableAnimator was trained at 512x512 and 576x1024.", 0, 7)
    # preprocessing: everything that looks at the reference gets the framed one
    n["frame"] = L.add("StableAnimatorFrameReference", [size, size, "stretch", "center", "DWPose/yolox_l.onnx", "auto"],
                       1)
    L.link(n["ref"], 0, n["frame"], "reference")
    n["face"] = L.add("StableAnimatorFaceEmbed", ["identity", "auto", "training", "error", "pack"], 1)
    L.link(n["frame"], 0, n["face"], "reference")
    n["pose"] = L.add("StableAnimatorDWPose", ["DWPose/yolox_l.onnx", "DWPose/dw-ll_ucoco_384.onnx", "global", "empty",
                                               "largest", "skeleton", "auto", "pack", size, size], 1)
    L.link(n["comp"], 0, n["pose"], "driving")
    L.link(n["frame"], 0, n["pose"], "reference")
    L.link(n["frame"], 1, n["pose"], "width")  # skeletons and masks kept at the generation size
    L.link(n["frame"], 2, n["pose"], "height")
    L.note("2. Preprocessing. DWPose draws the driving skeletons aligned to the reference body (check the preview: "
           "misalignment is the main cause of identity loss; try align = limbs). Face Embed takes the reference's "
           "ArcFace identity (antelopev2). The DWPose node shows a skeleton preview once it has run, and says whether "
           "the first driving pose matches the reference (if not: align = limbs, or trim the video's start).", 1, 10)
    # models and conditioning
    n["model"] = L.add("StableAnimatorModelLoader", ["Animation/unet.pth", "Animation/pose_net.pth",
                                                     "Animation/face_encoder.pth", "stableanimator/SVD", "auto", "default",
                                                     False], 2)
    n["clip"] = L.add("StableAnimatorCLIPEncode", [], 2)
    L.link(n["model"], 0, n["clip"], "model")
    L.link(n["frame"], 0, n["clip"], "reference")
    if core_sampler:
        _core_sampling(L, n, hjb, size, steps)
    else:
        _pack_sampling(L, n, hjb, size, steps)
    # output and readout
    frames = n["decode"]
    fps_source, fps_slot = n["comp"], 2
    if upscale_interpolate:
        up_model = L.add("UpscaleModelLoader", ["RealESRGAN_x2.pth"], 2)
        upscale = L.add("ImageUpscaleWithModel", [], 2)
        L.link(up_model, 0, upscale, "upscale_model")
        L.link(n["decode"], 0, upscale, "image")
        frames = L.add("RIFE VFI", ["rife47.pth", 10, 2, True, True, 1.0], 2)
        L.link(upscale, 0, frames, "frames")
        fps_source, fps_slot = L.add("StableAnimatorFrameRate", [2.0], 2, title="Frame rate x2 (RIFE)"), 0
        L.link(n["comp"], 2, fps_source, "fps")
        L.note("6. Upscale x2 (core Upscale Model Loader / Upscale Image (using Model), e.g. RealESRGAN_x2.pth in "
               "models/upscale_models) and RIFE frame interpolation x2 (needs the ComfyUI-Frame-Interpolation pack: "
               "github.com/Fannovel16/ComfyUI-Frame-Interpolation; it fetches rife47.pth itself). Twice the frames, "
               "so twice the driving video's frame rate.", 2, 8)
    L.note("5. Output: an H.264 mp4 in output/StableAnimator/ at the driving video's frame rate. The identity score "
           "is ArcFace cosine similarity to the reference per frame (the paper's CSIM); compare seeds, HJB on/off, "
           "alignment modes.", 4, 6)
    n["score"] = L.add("StableAnimatorIdentityScore", ["auto"], 4)
    L.link(n["decode"], 0, n["score"], "frames")
    L.link(n["face"], 0, n["score"], "face")
    n["plot"] = L.add("PreviewImage", [], 4, title="Identity over frames")
    L.link(n["score"], 2, n["plot"], "images")
    n["video_out"] = L.add("CreateVideo", [8.0], 4)
    L.link(frames, 0, n["video_out"], "images")
    L.link(fps_source, fps_slot, n["video_out"], "fps")
    # last in its column: its player takes the video's aspect ratio after a run, and grows down into free space
    n["save"] = L.add("SaveVideo", ["StableAnimator/animation", "auto", "auto"], 4)
    L.link(n["video_out"], 0, n["save"], "video")
    return L, n


def _link_conditioning_inputs(L: Layout, n: dict[str, int]) -> None:
    for name, src in (("model", n["model"]), ("reference", n["frame"]), ("clip_embeds", n["clip"]),
                      ("face", n["face"])):
        L.link(src, 0, n["cond"], name)
    L.link(n["frame"], 1, n["cond"], "width")
    L.link(n["frame"], 2, n["cond"], "height")
    L.link(n["pose"], 0, n["cond"], "pose_images")


HJB_WIDGETS = ["Animation/glintr100_torch.pth", 3, 0, 20, 0.1, "memory_bounded", 4, "tiled", "pack"]


def _decode(L: Layout, n: dict[str, int]) -> None:
    """StableAnimator Decode of the sampler's LATENT, 4 frames at a time (the official chunk)."""
    n["decode"] = L.add("StableAnimatorDecode", [4], 3)
    L.link(n["model"], 0, n["decode"], "model")
    L.link(n["sampler"], 0, n["decode"], "latent")


def _pack_sampling(L: Layout, n: dict[str, int], hjb: bool, size: int, steps: int) -> None:
    """Conditioning, sampling and decoding with the pack's own sampler."""
    # official values; then id_strength/start/end, pose_strength/start/end, first_frame_fix
    n["cond"] = L.add("StableAnimatorConditioning", [size, size, 7, 127, 0.02, 23123134, "fixed",
                                                     1.0, 0.0, 1.0, 1.0, 0.0, 1.0, False], 2)
    _link_conditioning_inputs(L, n)
    L.note("3. Conditioning: CLIP and VAE encodings of the reference, face tokens, skeleton frames. id_strength / "
           "pose_strength (with start/end percent of the steps) weigh identity against pose; first_frame_fix "
           "replaces SVD's blurry first frame.", 2, 6)
    # sampling and decoding
    n["sampler"] = L.add("StableAnimatorSampler", [23123134, "fixed", steps, 3.0, 16, 4, 0.0, False, True], 3)
    L.link(n["model"], 0, n["sampler"], "model")
    L.link(n["cond"], 0, n["sampler"], "conditioning")
    L.link(n["cond"], 1, n["sampler"], "latent")
    _decode(L, n)
    L.note(f"4. Sampling: SVD Euler, {steps} steps, guidance 3, windows of 16 frames overlapping by 4 for long videos "
           "(lower tile_size to save VRAM). Decode: frames decoded 4 at a time (larger = smoother, more VRAM).", 3, 5)
    if hjb:
        n["hjb"] = L.add("StableAnimatorHJBSettings", HJB_WIDGETS, 3)
        L.link(n["hjb"], 0, n["sampler"], "hjb")
        L.link(n["pose"], 2, n["sampler"], "face_masks")
        L.note("HJB face optimisation (the paper's inference-time identity booster): at steps 0-20 the predicted "
               "frames' faces are pulled towards the reference identity with 3 Adam iterations, each a decode and a "
               "backward pass through the VAE decoder: expect sampling to take several times longer than without "
               "(try the quick preview workflow first). memory_bounded gives the official result with memory "
               "independent of the frame count. Cancel stops within seconds, also inside an iteration.", 3, 11)


def _core_sampling(L: Layout, n: dict[str, int], hjb: bool, size: int, steps: int) -> None:
    """Conditioning, sampling and decoding with core KSampler (euler, karras: the official sampler)."""
    # the pack conditioning's values, then tile_size, tile_overlap, official_noise
    n["cond"] = L.add("StableAnimatorKSamplerConditioning", [size, size, 7, 127, 0.02, 23123134, "fixed", 1.0, 0.0,
                                                             1.0, 1.0, 0.0, 1.0, False, 16, 4, True], 2)
    _link_conditioning_inputs(L, n)
    L.note("3. Conditioning for core samplers: positive (reference, face tokens, skeletons), negative (the official "
           "unconditional branch) and the latent. official_noise: KSampler's seed draws the official initial noise "
           "(use the same seed as noise_seed). tile_size/tile_overlap: the official frame windows, applied inside "
           "every model evaluation.", 2, 9)
    n["native"] = L.add("StableAnimatorModelForKSampler", [True], 3)
    L.link(n["model"], 0, n["native"], "stableanimator")
    model = n["native"]
    if hjb:
        n["hjb"] = L.add("StableAnimatorHJBSettings", HJB_WIDGETS, 3)
        n["hook"] = L.add("StableAnimatorHJBHook", [], 3)
        for name, src, slot in (("model", model, 0), ("stableanimator", n["model"], 0), ("positive", n["cond"], 0),
                                ("hjb", n["hjb"], 0), ("face_masks", n["pose"], 2)):
            L.link(src, slot, n["hook"], name)
        L.note("HJB face optimisation as a sampler hook: after guidance, the predicted clean latents of steps 0-20 are "
               "optimised towards the reference identity. With euler it is the pack's HJB; face masks come from the "
               "DWPose node. Expect sampling to take several times longer than without.", 3, 7)
        model = n["hook"]
    n["sampler"] = L.add("KSampler", [23123134, "fixed", steps, 3.0, "euler", "karras", 1.0], 3)
    L.link(model, 0, n["sampler"], "model")
    L.link(n["cond"], 0, n["sampler"], "positive")
    L.link(n["cond"], 1, n["sampler"], "negative")
    L.link(n["cond"], 2, n["sampler"], "latent_image")
    _decode(L, n)
    L.note("4. Core KSampler: euler + karras with cfg 3 is the official sampler (the same video as "
           "StableAnimator Sampler). Any other sampler/scheduler, SamplerCustom (e.g. AlignYourStepsScheduler SVD) "
           "and model patches (EasyCache, VideoLinearCFGGuidance for the guidance ramp) work too.", 3, 8)


def basic() -> dict[str, Any]:
    return _common(hjb=False)[0].json()


def quick_preview() -> dict[str, Any]:
    """The basic workflow at 256x256 and 10 steps: a first look at pose alignment and identity in a fraction of the
    time (sampling cost grows with the pixel count and the steps)."""
    return _common(hjb=False, size=256, steps=10)[0].json()


def hjb() -> dict[str, Any]:
    return _common(hjb=True)[0].json()


def upscale_interpolate() -> dict[str, Any]:
    return _common(hjb=False, upscale_interpolate=True)[0].json()


def ksampler() -> dict[str, Any]:
    """The basic workflow with core KSampler in place of the pack's sampler: the same video."""
    return _common(hjb=False, core_sampler=True)[0].json()


def ksampler_hjb() -> dict[str, Any]:
    return _common(hjb=True, core_sampler=True)[0].json()


# File names are the template browser's titles (it lists them as the server globs them, so the numbers give the
# order); each has a .jpg thumbnail of the same name.
BASIC = "StableAnimator 1 - basic animation.json"
QUICK_PREVIEW = "StableAnimator 2 - quick preview 256px 10 steps.json"
HJB = "StableAnimator 3 - HJB face identity boost.json"
UPSCALE_RIFE = "StableAnimator 4 - upscale and RIFE interpolation.json"
KSAMPLER = "StableAnimator 5 - core KSampler.json"
KSAMPLER_HJB = "StableAnimator 6 - core KSampler with HJB hook.json"
WORKFLOWS_BUILT: dict[str, Callable[[], dict[str, Any]]] = {
    BASIC: basic,
    QUICK_PREVIEW: quick_preview,
    HJB: hjb,
    UPSCALE_RIFE: upscale_interpolate,
    KSAMPLER: ksampler,
    KSAMPLER_HJB: ksampler_hjb,
}


THUMBNAIL_SIZE = (512, 384)


def thumbnail(name: str) -> "Image.Image":
    """The template browser's picture for a workflow: reference photo -> skeleton-driven frame, and the title."""
    import av
    from PIL import Image, ImageDraw, ImageFont

    inputs = WORKFLOWS / "inputs"
    reference = Image.open(inputs / REFERENCE).convert("RGB")
    with av.open(str(inputs / DRIVING)) as container:
        driving = next(container.decode(video=0)).to_image().convert("RGB")
    canvas = Image.new("RGB", THUMBNAIL_SIZE, (32, 32, 40))
    side = 224
    canvas.paste(reference.resize((side, side)), (16, 40))
    canvas.paste(driving.resize((side, side)), (THUMBNAIL_SIZE[0] - side - 16, 40))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=26)
    small = ImageFont.load_default(size=18)
    draw.text((THUMBNAIL_SIZE[0] // 2, 40 + side // 2), "+", fill=(255, 200, 80), font=font, anchor="mm")
    draw.text((16 + side // 2, 20), "reference photo", fill=(220, 220, 220), font=small, anchor="mm")
    draw.text((THUMBNAIL_SIZE[0] - 16 - side // 2, 20), "driving video", fill=(220, 220, 220), font=small, anchor="mm")
    title = Path(name).stem.split(" - ", 1)[-1]
    draw.text((THUMBNAIL_SIZE[0] // 2, 300), "StableAnimator", fill=(255, 200, 80), font=font, anchor="mm")
    draw.text((THUMBNAIL_SIZE[0] // 2, 340), title, fill=(240, 240, 240), font=font, anchor="mm")
    return canvas


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"


def main() -> None:
    for name, build in WORKFLOWS_BUILT.items():
        (WORKFLOWS / name).write_text(render(build()))
        thumbnail(name).save(WORKFLOWS / f"{Path(name).stem}.jpg", quality=85)
        print("wrote", WORKFLOWS / name, "and its .jpg thumbnail")


if __name__ == "__main__":
    main()
