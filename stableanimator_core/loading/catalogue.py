"""Every model file the pack uses, in one table: its slot, where it sits in the official download, the name filter
its node combo uses, and where to get it; with the folder names, the file extensions and the onnxruntime provider
choices. The layout (:mod:`.layout`), the download command, the error hints, ComfyUI's model folders and the
node combos all read it, so a name is written once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

STABLEANIMATOR_FOLDER = "stableanimator"  # models/stableanimator: a download of the Hugging Face repository
INSIGHTFACE_FOLDER = "insightface"  # models/insightface/models/antelopev2, shared with InstantID / PuLID users
WEIGHT_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
ONNX_EXTENSIONS = (".onnx",)
PROVIDER_CHOICES = ("auto", "cuda", "cpu")  # onnxruntime devices of the ONNX models

HF_REPO_ID = "FrancisRing/StableAnimator"
STABLEANIMATOR_SOURCE = f"https://huggingface.co/{HF_REPO_ID}"
DWPOSE_SOURCE = f"{STABLEANIMATOR_SOURCE}/tree/main/DWPose (or https://huggingface.co/yzd-v/DWPose)"
ANTELOPEV2_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/antelopev2.zip"
ANTELOPEV2_SOURCE = (
    "the antelopev2 pack of the insightface model zoo (https://github.com/deepinsight/insightface/tree/master/"
    "model_zoo); unzip it so that the .onnx files sit directly in models/insightface/models/antelopev2/"
)


@dataclass(frozen=True)
class ModelFile:
    """One file of the StableAnimator download: ``path`` inside ``models/stableanimator``."""

    slot: str  # the field of layout.ModelLayout
    path: str
    contains: str  # the node combo lists files whose name contains this
    source: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def stem(self) -> str:
        return os.path.splitext(self.name)[0]

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


UNET = ModelFile("unet", "Animation/unet.pth", "unet", STABLEANIMATOR_SOURCE)
POSE_NET = ModelFile("pose_net", "Animation/pose_net.pth", "pose", STABLEANIMATOR_SOURCE)
FACE_ENCODER = ModelFile("face_encoder", "Animation/face_encoder.pth", "face_encoder", STABLEANIMATOR_SOURCE)
FACE_EMBEDDER = ModelFile("face_embedder", "Animation/glintr100_torch.pth", "glintr", STABLEANIMATOR_SOURCE)
DWPOSE_DETECTOR = ModelFile("dwpose_detector", "DWPose/yolox_l.onnx", "yolox", DWPOSE_SOURCE)
DWPOSE_ESTIMATOR = ModelFile("dwpose_estimator", "DWPose/dw-ll_ucoco_384.onnx", "dw-ll", DWPOSE_SOURCE)
ANIMATION_WEIGHTS = (UNET, POSE_NET, FACE_ENCODER, FACE_EMBEDDER)  # .pth or a .safetensors copy
DWPOSE_MODELS = (DWPOSE_DETECTOR, DWPOSE_ESTIMATOR)

# the SVD-xt diffusers folder: the download's SVD/, app.py's name, or ComfyUI's diffusers folder
SVD_FOLDER_CANDIDATES = (
    (STABLEANIMATOR_FOLDER, "SVD"),
    (STABLEANIMATOR_FOLDER, "stable-video-diffusion-img2vid-xt"),
    ("diffusers", "stable-video-diffusion-img2vid-xt"),
    ("svd", "stable-video-diffusion-img2vid-xt"),
)
SVD_PARENT_FOLDERS = (STABLEANIMATOR_FOLDER, "diffusers")  # the model folders the node's SVD combo lists

ANTELOPEV2_FILES = ("scrfd_10g_bnkps.onnx", "glintr100.onnx", "2d106det.onnx", "1k3d68.onnx", "genderage.onnx")
ANTELOPEV2_REQUIRED = ANTELOPEV2_FILES[:2]  # the detector and the recogniser; the others are optional

_SOURCES = {**{m.name.lower(): m.source for m in (*ANIMATION_WEIGHTS, *DWPOSE_MODELS)},
            **{name: ANTELOPEV2_SOURCE for name in ANTELOPEV2_FILES}}


def model_source(filename: str) -> str:
    """Where a model file can be downloaded, for error messages."""
    return _SOURCES.get(os.path.basename(filename).lower(), "the model's original release page")
