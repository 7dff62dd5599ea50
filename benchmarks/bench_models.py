"""Full-size StableAnimator models with seeded random weights, and synthetic inputs, for the benchmarks.

Time and memory do not depend on weight values, so no released checkpoint is needed. Architectures come from
the parity folder's ``fullsize_keys.json`` (``_notes.configs``: SVD-xt UNet / VAE / CLIP ViT-H/14, PoseNet,
FusionFaceId), with a copy below for when that folder is not around. Layers the official code zero-initialises
(PoseNet ``final_proj``, the face perceiver's ``proj_out``) are redrawn so no path is a zero fast path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from torch import nn

from stableanimator_core.models.face_encoder import FusionFaceId
from stableanimator_core.models.pose_net import PoseNet
from stableanimator_core.models.unet import StableAnimatorUNet, UNetConfig
from stableanimator_core.loading.bundle import StableAnimatorModels

PARITY_DIR = Path(os.environ.get("STABLEANIMATOR_PARITY_DIR", "/work/shared/parity"))

SVD_XT_CONFIGS: dict[str, Any] = {
    "unet": {"sample_size": 96, "in_channels": 8, "out_channels": 4,
             "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
             "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
             "block_out_channels": [320, 640, 1280, 1280], "addition_time_embed_dim": 256,
             "projection_class_embeddings_input_dim": 768, "layers_per_block": 2, "cross_attention_dim": 1024,
             "transformer_layers_per_block": 1, "num_attention_heads": [5, 10, 20, 20], "num_frames": 25},
    "vae": {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
            "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True},
    "image_encoder": {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16,
                      "num_hidden_layers": 32, "patch_size": 14, "image_size": 224, "projection_dim": 1024,
                      "hidden_act": "gelu", "layer_norm_eps": 1e-05, "num_channels": 3},
    "face_encoder": {"cross_attention_dim": 1024, "id_embeddings_dim": 512, "clip_embeddings_dim": 1024,
                     "num_tokens": 4},
    "pose_net": {"noise_latent_channels": 320},
}
SVD_XT_SCHEDULER = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                    "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
                    "prediction_type": "v_prediction", "set_alpha_to_one": False, "sigma_max": 700.0,
                    "sigma_min": 0.002, "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading",
                    "timestep_type": "continuous", "trained_betas": None, "use_karras_sigmas": True}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def fullsize_configs() -> dict[str, Any]:
    path = PARITY_DIR / "fullsize_keys.json"
    if path.is_file():
        return json.loads(path.read_text())["_notes"]["configs"]
    return dict(SVD_XT_CONFIGS)


def tiny_configs() -> dict[str, Any]:
    """The tiny test models' architectures (every layer type, few channels), for the benchmarks' quick CPU runs."""
    from stableanimator_core.testing.tiny_models import TINY_CLIP, TINY_UNET, TINY_VAE

    clip = {k: v for k, v in TINY_CLIP.items() if k not in ("architectures", "model_type")}
    vae = {k: v for k, v in TINY_VAE.items() if not k.startswith("_")}
    unet = {k: v for k, v in TINY_UNET.items() if not k.startswith("_")}
    cross = unet["cross_attention_dim"]
    return {"unet": unet, "vae": vae, "image_encoder": clip,
            "face_encoder": {"cross_attention_dim": cross, "id_embeddings_dim": 512,
                             "clip_embeddings_dim": clip["projection_dim"], "num_tokens": 4},
            "pose_net": {"noise_latent_channels": unet["block_out_channels"][0]},
            "face_embedder": {"layers": [1, 1, 1, 1]}}


def scheduler_config() -> dict[str, Any]:
    path = PARITY_DIR / "weights" / "configs.json"
    if path.is_file():
        return json.loads(path.read_text()).get("scheduler") or dict(SVD_XT_SCHEDULER)
    return dict(SVD_XT_SCHEDULER)


# ----------------------------------------------------------------------------- constructors (any device)

def make_unet(cfg: dict[str, Any]) -> StableAnimatorUNet:
    return StableAnimatorUNet(UNetConfig.from_dict(cfg["unet"]))


def make_vae(cfg: dict[str, Any]) -> nn.Module:
    from diffusers import AutoencoderKLTemporalDecoder

    return AutoencoderKLTemporalDecoder(**cfg["vae"])


def make_clip(cfg: dict[str, Any]) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["image_encoder"]))


def make_pose_net(cfg: dict[str, Any]) -> PoseNet:
    return PoseNet(cfg["pose_net"]["noise_latent_channels"])


def make_face_encoder(cfg: dict[str, Any]) -> FusionFaceId:
    f = cfg["face_encoder"]
    return FusionFaceId(f["cross_attention_dim"], f["id_embeddings_dim"], f["clip_embeddings_dim"], f["num_tokens"])


def _redraw_zero_inits(pose_net: nn.Module, face_encoder: nn.Module, generator: torch.Generator) -> None:
    """The official code zero-initialises these; random values keep the pose and face paths non-trivial."""
    with torch.no_grad():
        w = pose_net.final_proj.weight
        w.copy_(torch.randn(w.shape, generator=generator) * (1.0 / w[0].numel()) ** 0.5)
        pose_net.final_proj.bias.copy_(torch.randn(pose_net.final_proj.bias.shape, generator=generator) * 0.02)
        for name, p in face_encoder.named_parameters():
            if p.ndim >= 1 and not p.abs().sum():  # e.g. the perceiver's proj_out
                p.copy_(torch.randn(p.shape, generator=generator) * (0.02 if p.ndim == 1 else p.shape[-1] ** -0.5))


def build_models(seed: int = 0, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 with_face_embedder: bool = False, configs: Optional[dict[str, Any]] = None) -> StableAnimatorModels:
    """Our pipeline's models, as :func:`loading.load_components` would give them (VAE kept float32).

    ``configs``: the architectures (default :func:`fullsize_configs`; :func:`tiny_configs` for quick runs)."""
    cfg = configs or fullsize_configs()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    unet = make_unet(cfg)
    pose_net = make_pose_net(cfg)
    face_encoder = make_face_encoder(cfg)
    _redraw_zero_inits(pose_net, face_encoder, g)
    vae = make_vae(cfg)
    clip = make_clip(cfg)
    face_embedder = None
    if with_face_embedder:
        from stableanimator_core.models.iresnet import IRESNET100_LAYERS, IResNet

        layers = cfg.get("face_embedder", {}).get("layers", IRESNET100_LAYERS)
        face_embedder = IResNet(layers).eval().requires_grad_(False).to(device)

    def finish(m: nn.Module, dt: Optional[torch.dtype]) -> nn.Module:
        m.requires_grad_(False).eval()
        return m.to(device=device, dtype=dt) if dt is not None else m.to(device)

    return StableAnimatorModels(unet=finish(unet, dtype), pose_net=finish(pose_net, dtype),
                                face_encoder=finish(face_encoder, dtype), vae=finish(vae, torch.float32),
                                image_encoder=finish(clip, dtype), scheduler_config=scheduler_config(),
                                face_embedder=face_embedder)


def unet_copy(unet: StableAnimatorUNet, dtype: torch.dtype) -> StableAnimatorUNet:
    """The same weights in another dtype, without a second full-precision copy."""
    with torch.device("meta"):
        new = StableAnimatorUNet(unet.config)
    device = next(unet.parameters()).device
    new.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in unet.state_dict().items()},
                        strict=True, assign=True)
    return new.requires_grad_(False).eval()


# ----------------------------------------------------------------------------- inputs

@dataclass
class BenchInputs:
    reference: np.ndarray  # [H0, W0, 3] uint8, not at the generation size (both pipelines resize it)
    poses: list[np.ndarray]  # [H, W, 3] uint8 skeleton-like frames at the generation size
    arcface: np.ndarray  # [512] float32, raw (un-normalised) like insightface's embedding
    face_boxes: list[tuple[int, int, int, int]]  # inclusive (y0, y1, x0, x1), for HJB
    reference_face_embedding: torch.Tensor  # [1, 512], for HJB


def synthetic_face_boxes(frames: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
    """A face box a quarter of the frame wide, drifting a few pixels per frame (inclusive y0, y1, x0, x1)."""
    fh, fw = max(8, height // 4), max(8, width // 4)
    boxes = []
    for k in range(frames):
        y0 = height // 8 + (k % 3)
        x0 = (width - fw) // 2 + (k % 5) - 2
        boxes.append((y0, y0 + fh - 1, x0, x0 + fw - 1))
    return boxes


def make_inputs(frames: int, height: int, width: int, seed: int = 0) -> BenchInputs:
    rng = np.random.default_rng(seed)
    h0, w0 = int(height * 1.3) + 7, int(width * 1.1) + 5
    yy, xx = np.mgrid[0:h0, 0:w0]
    base = np.stack([np.sin(xx / 23.0), np.cos(yy / 17.0), np.sin((xx + yy) / 31.0)], -1)
    reference = np.clip((base * 0.4 + 0.5 + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)
    poses = []
    for k in range(frames):
        img = PIL.Image.new("RGB", (width, height))
        draw = PIL.ImageDraw.Draw(img)
        pts = [(int(width * (0.3 + 0.4 * rng.random())), int(height * (0.1 + 0.8 * rng.random()))) for _ in range(18)]
        for i in range(17):
            color = tuple(int(c) for c in rng.integers(40, 256, 3))
            draw.line([pts[i], pts[i + 1]], fill=color, width=max(2, width // 64))
        poses.append(np.asarray(img))
    boxes = synthetic_face_boxes(frames, height, width)
    arcface = rng.normal(0, 1, 512).astype(np.float32)  # norm ~22, like insightface's raw glintr100 output
    ref_face = torch.from_numpy(rng.normal(0, 1, (1, 512)).astype(np.float32))
    return BenchInputs(reference, poses, arcface, boxes, ref_face)
