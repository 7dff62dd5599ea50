"""A test-only ComfyUI pack for tests/e2e/test_e2e_core_models.py.

* Tiny CLIP Vision Loader: ComfyUI's own ``ClipVisionModel`` from a tiny config. ComfyUI's CLIPVisionLoader only
  recognises full-size layer counts (``comfy/clip_vision.py``, ``load_clipvision_from_sd``), so the tests build the
  core object themselves; everything after the loader is ComfyUI's.
* Save Image Tensor: an IMAGE as float32 safetensors (PNG would round to 8 bits), listed in the node's output.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import comfy.clip_vision
import comfy.utils
import folder_paths


class TinyCLIPVisionLoader:
    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": "clip_vision/tiny"})}}

    def load(self, folder):
        root = Path(folder_paths.models_dir) / folder
        clip = comfy.clip_vision.ClipVisionModel(str(root / "config.json"))
        missing, unexpected = clip.load_sd(comfy.utils.load_torch_file(str(root / "model.safetensors")))
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ValueError(f"tiny CLIP vision: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return (clip,)


class SaveImageTensor:
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": "images"})}}

    def save(self, images, name):
        from safetensors.torch import save_file

        filename = f"{name}_{uuid.uuid4().hex[:8]}.safetensors"
        path = Path(folder_paths.get_output_directory()) / filename
        save_file({"images": images.float().contiguous().cpu()}, str(path))
        return {"ui": {"tensors": [{"filename": filename, "subfolder": "", "type": "output"}]}}


NODE_CLASS_MAPPINGS = {"TinyCLIPVisionLoader": TinyCLIPVisionLoader, "SaveImageTensor": SaveImageTensor}
