"""Loader nodes: the StableAnimator models and the HJB face-optimisation settings."""

from __future__ import annotations

import logging

from ..stableanimator_core.models.acceleration import WEIGHT_STORAGES, UNetOptions
from ..stableanimator_core.devices import PRECISIONS, resolve_decode_dtype, resolve_dtype
from ..stableanimator_core.hjb import HJB_MODES, HJB_WINDOWS, HJBSettings
from ..stableanimator_core.presets import OFFICIAL, PACK, PRESETS
from ..stableanimator_core.loading import catalogue
from ..stableanimator_core.loading.components import load_components, load_face_embedder
from . import comfy_bridge as bridge
from .payloads import HJB, MODEL, HJBOptions, ModelHandle

log = logging.getLogger("StableAnimator")
HJB_DEFAULTS = HJBSettings()  # the official values; the widgets' defaults
CATEGORY = "StableAnimator"
NO_SVD_FOLDER = "none"  # ComfyUI's VAE and CLIP vision are connected to the nodes instead


def _weights_choices(model: catalogue.ModelFile) -> list[str]:
    return bridge.file_choices(bridge.WEIGHT_EXTENSIONS, model.contains, model.path)


class StableAnimatorModelLoader:
    DESCRIPTION = ("Loads the StableAnimator UNet, PoseNet and face encoder (Animation/*.pth from "
                   "huggingface.co/FrancisRing/StableAnimator) with the SVD-xt VAE and CLIP image encoder, from "
                   "ComfyUI/models/stableanimator. Files load strictly and safely (no pickled code). Models stay on "
                   "the CPU until a node needs them; ComfyUI's memory manager moves and evicts them.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded StableAnimator models (UNet, PoseNet, face encoder, VAE, CLIP image encoder).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet": (_weights_choices(catalogue.UNET),
                     {"tooltip": "StableAnimator UNet (Animation/unet.pth, or a .safetensors copy)."}),
            "pose_net": (_weights_choices(catalogue.POSE_NET),
                         {"tooltip": "PoseNet, the skeleton encoder (Animation/pose_net.pth)."}),
            "face_encoder": (_weights_choices(catalogue.FACE_ENCODER),
                             {"tooltip": "Face encoder turning the ArcFace identity into tokens "
                                         "(Animation/face_encoder.pth)."}),
            "svd": (bridge.with_default(bridge.list_svd_folders(), "stableanimator/SVD") + [NO_SVD_FOLDER],
                    {"tooltip": "The SVD-xt diffusers folder (SVD/ in the StableAnimator download): its vae/ and "
                                "image_encoder/ are used; its unet weights are not. 'none': use ComfyUI's own VAE and "
                                "CLIP vision of svd_xt.safetensors (Image Only Checkpoint Loader), connected to "
                                "CLIP Encode, Conditioning, Decode and the HJB node."}),
            "precision": (list(PRECISIONS), {"default": "auto",
                                              "tooltip": "auto: bf16 on GPUs with native bf16 (compute "
                                                         "capability 8.0+: RTX 30xx and newer, A100, H100), fp16 "
                                                         "on older GPUs and Apple, fp32 on CPU; the VAE in fp32. "
                                                         "official: as inference_basic.py, fp16 models and fp16 "
                                                         "VAE decoding (the encoder in fp32). For HJB the official "
                                                         "script (inference_op.py) uses fp32 everywhere: choose "
                                                         "fp32."}),
        }, "optional": {
            "weight_storage": (list(WEIGHT_STORAGES), {"default": "default",
                                                       "tooltip": "fp8: UNet weights stored in 8 bits (half the "
                                                                  "VRAM of bf16, slower, approximate). default: the "
                                                                  "precision above."}),
            "compile_unet": ("BOOLEAN", {"default": False,
                                         "tooltip": "torch.compile the UNet: faster on GPUs after a warm-up of "
                                                    "minutes; falls back to eager if compiling fails."}),
        }}

    @classmethod
    def IS_CHANGED(cls, unet, pose_net, face_encoder, svd, precision, **options):
        svd_stamp = svd if svd == NO_SVD_FOLDER else bridge.svd_fingerprint(svd)
        return (bridge.files_fingerprint(bridge.STABLEANIMATOR_FOLDER, [unet, pose_net, face_encoder])
                + svd_stamp + precision + repr(sorted(options.items())))

    def load(self, unet, pose_net, face_encoder, svd, precision, weight_storage="default", compile_unet=False):
        device = bridge.torch_device()
        dtype = resolve_dtype(precision, device)
        files = [bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, name, what)
                 for name, what in ((unet, "UNet"), (pose_net, "PoseNet"), (face_encoder, "Face encoder"))]
        options = UNetOptions(compile=compile_unet, weight_storage=weight_storage)
        svd_dir = None if svd == NO_SVD_FOLDER else bridge.resolve_svd_folder(svd)
        models = load_components(*files, svd_dir, dtype, bridge.offload_device(),
                                 unet_options=options)
        log.info("StableAnimator models loaded (%s, %s)", unet, dtype)
        return (ModelHandle.wrap(models, dtype, name=unet, decode_dtype=resolve_decode_dtype(precision)),)


class StableAnimatorHJBSettings:
    DESCRIPTION = ("Settings of StableAnimator's inference-time face optimisation (HJB): at each refined step the "
                   "predicted clean latents are optimised with Adam so the decoded faces match the reference identity "
                   "(ArcFace IResNet-100, Animation/glintr100_torch.pth). Connect to the sampler's 'hjb' input and give "
                   "the sampler per-frame face masks. It multiplies sampling time; 'memory_bounded' gives the same "
                   "result as 'faithful' with far less VRAM, 'fast' is an approximation for small GPUs.")
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (HJB,)
    RETURN_NAMES = ("hjb",)
    OUTPUT_TOOLTIPS = ("HJB face-optimisation settings and face network, for the sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face_model": (_weights_choices(catalogue.FACE_EMBEDDER),
                           {"tooltip": "ArcFace IResNet-100 weights (Animation/glintr100_torch.pth)."}),
            "iterations": ("INT", {"default": HJB_DEFAULTS.num_iterations, "min": 1, "max": 20,
                                   "tooltip": "Adam iterations per refined step (official: 3)."}),
            "start_step": ("INT", {"default": HJB_DEFAULTS.start_step, "min": 0, "max": 1000,
                                   "tooltip": "First denoising step refined (0-based, official: 0)."}),
            "end_step": ("INT", {"default": HJB_DEFAULTS.end_step, "min": 0, "max": 1000,
                                 "tooltip": "Last denoising step refined, inclusive (official: 20 of 25)."}),
            "eta": ("FLOAT", {"default": HJB_DEFAULTS.eta, "min": 0.0001, "max": 10.0, "step": 0.01,
                              "tooltip": "Learning-rate scale: step i uses eta * (1 - i / steps) (official: 0.1)."}),
            "mode": (list(HJB_MODES), {"default": PACK.hjb_mode,  # the same default as the CLI
                                       "tooltip": "faithful: the official computation. memory_bounded: same result, "
                                                  "memory independent of the frame count. fast: bf16 and face-only "
                                                  "decoding, an approximation."}),
            "decode_chunk_size": ("INT", {"default": HJB_DEFAULTS.decode_chunk_size, "min": 1, "max": 64,
                                          "tooltip": "Frames decoded together during the optimisation (official: "
                                                     "4)."}),
        }, "optional": {
            "window": (list(HJB_WINDOWS), {"default": "tiled",
                                           "tooltip": "tiled: the sampler's frame windows, memory bounded by "
                                                      "tile_size. all_frames: one window over the whole video, as "
                                                      "the official inference_op.py (memory grows with the frames)."}),
            "vae": ("VAE", {"tooltip": "Optional: ComfyUI's SVD VAE (e.g. from Image Only Checkpoint Loader on "
                                       "svd_xt.safetensors) to decode the faces, instead of the Model Loader's SVD "
                                       "folder."}),
            "preset": (list(PRESETS), {"default": "pack",
                                       "tooltip": "official: mode faithful and window all_frames, as "
                                                  "inference_op.py, whatever those widgets say."}),
        }}

    @classmethod
    def IS_CHANGED(cls, face_model, **_):
        return bridge.files_fingerprint(bridge.STABLEANIMATOR_FOLDER, [face_model])

    def build(self, face_model, iterations, start_step, end_step, eta, mode, decode_chunk_size, window="tiled",
              preset="pack", vae=None):
        if preset == "official":
            mode, window = OFFICIAL.hjb_mode, OFFICIAL.hjb_window
        settings = HJBSettings(num_iterations=iterations, start_step=start_step, end_step=end_step, eta=eta,
                               mode=mode, decode_chunk_size=decode_chunk_size, window=window)
        path = bridge.resolve_file(bridge.STABLEANIMATOR_FOLDER, face_model, "Face-recognition (glintr100)")
        face_net = load_face_embedder(path, bridge.offload_device())
        group = bridge.ManagedModels(bridge.ModuleGroup(face_net=face_net), bridge.torch_device(),
                                     bridge.offload_device())
        return (HJBOptions(settings, face_net, group, core_vae=vae),)


NODE_CLASS_MAPPINGS = {
    "StableAnimatorModelLoader": StableAnimatorModelLoader,
    "StableAnimatorHJBSettings": StableAnimatorHJBSettings,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StableAnimatorModelLoader": "StableAnimator Model Loader",
    "StableAnimatorHJBSettings": "StableAnimator HJB Face Optimisation",
}
