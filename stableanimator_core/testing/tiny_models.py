"""A complete models folder with tiny random weights in the official layout and file formats.

    python -m stableanimator_core.testing make-tiny-models DIR

writes ``DIR/stableanimator/{Animation,DWPose,SVD}`` and ``DIR/insightface/models/antelopev2`` exactly as the
real downloads are laid out (``.pth`` state dicts with the official key names, the SVD diffusers folder with
its config files), so the nodes, the bundled workflows and the command line run unmodified against it. The
videos it produces are noise: the point is that every real loading and inference path runs, fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..loading.layout import ModelLayout

# The architectures of the parity fixture's tiny models: every layer type of the real ones, far fewer channels.
TINY_UNET = {
    "_class_name": "UNetSpatioTemporalConditionModel", "sample_size": 16, "in_channels": 8, "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal",
                         "CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal",
                       "CrossAttnUpBlockSpatioTemporal"],
    "block_out_channels": [32, 64, 64, 64], "addition_time_embed_dim": 32,
    "projection_class_embeddings_input_dim": 96, "layers_per_block": 2, "cross_attention_dim": 128,
    "transformer_layers_per_block": 1, "num_attention_heads": [2, 4, 4, 4], "num_frames": 25,
}
TINY_VAE = {
    "_class_name": "AutoencoderKLTemporalDecoder", "in_channels": 3, "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "block_out_channels": [32, 32, 32, 32], "layers_per_block": 1,
    "latent_channels": 4, "sample_size": 128, "scaling_factor": 0.18215, "force_upcast": True,
}
TINY_CLIP = {
    "architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model", "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 2, "patch_size": 32,
    "image_size": 224, "projection_dim": 128, "hidden_act": "gelu", "layer_norm_eps": 1e-05, "num_channels": 3,
}
SVD_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "set_alpha_to_one": False, "sigma_max": 700.0, "sigma_min": 0.002,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous",
    "trained_betas": None, "use_karras_sigmas": True,
}
CLIP_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
    "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _randomize(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Redraw every parameter (as the fixture did), so that zero-initialised layers also carry signal."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in**0.5)
            elif "norm" in name or name.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "features.weight")):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model


def make_tiny_models(root: str | Path, seed: int = 0) -> ModelLayout:
    """Write the tiny models folder under ``root``; returns its layout."""
    from diffusers import AutoencoderKLTemporalDecoder
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ..models.face_encoder import FusionFaceId
    from ..models.iresnet import IResNet
    from ..models.pose_net import PoseNet
    from ..models.unet import StableAnimatorUNet, UNetConfig
    from .onnx_mocks import write_antelopev2_pack, write_dwpose_models

    root = Path(root)
    sa = root / "stableanimator"
    anim, svd = sa / "Animation", sa / "SVD"
    anim.mkdir(parents=True, exist_ok=True)
    g = torch.Generator("cpu").manual_seed(seed)

    torch.save(_randomize(StableAnimatorUNet(UNetConfig.from_dict(TINY_UNET)), g).state_dict(), anim / "unet.pth")
    torch.save(_randomize(PoseNet(TINY_UNET["block_out_channels"][0]), g).state_dict(), anim / "pose_net.pth")
    face_encoder = FusionFaceId(cross_attention_dim=TINY_UNET["cross_attention_dim"], id_embeddings_dim=512,
                                clip_embeddings_dim=TINY_CLIP["projection_dim"], num_tokens=4)
    torch.save(_randomize(face_encoder, g).state_dict(), anim / "face_encoder.pth")
    torch.save(_randomize(IResNet.from_config({"layers": [1, 1, 1, 1], "num_features": 128}), g).state_dict(),
               anim / "glintr100_torch.pth")

    _write_json(svd / "unet" / "config.json", TINY_UNET)
    _write_json(svd / "vae" / "config.json", TINY_VAE)
    vae = AutoencoderKLTemporalDecoder.from_config({k: v for k, v in TINY_VAE.items() if not k.startswith("_")})
    save_file(_randomize(vae, g).state_dict(), str(svd / "vae" / "diffusion_pytorch_model.safetensors"))
    _write_json(svd / "image_encoder" / "config.json", TINY_CLIP)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**{k: v for k, v in TINY_CLIP.items() if k != "architectures"}))
    clip_sd = {k: v.contiguous() for k, v in _randomize(clip, g).state_dict().items()}
    save_file(clip_sd, str(svd / "image_encoder" / "model.safetensors"))
    _write_json(svd / "scheduler" / "scheduler_config.json", SVD_SCHEDULER)
    _write_json(svd / "feature_extractor" / "preprocessor_config.json", CLIP_PREPROCESSOR)
    _write_json(svd / "model_index.json", {"_class_name": "StableVideoDiffusionPipeline",
                                           "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
                                           "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                                           "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
                                           "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                                           "feature_extractor": ["transformers", "CLIPImageProcessor"]})

    write_dwpose_models(str(sa / "DWPose"))
    write_antelopev2_pack(str(root / "insightface"))
    (root / "TINY_RANDOM_MODELS.txt").write_text(
        "Tiny random weights in the official StableAnimator layout, written by "
        "`python -m stableanimator_core.testing make-tiny-models`. For tests and demos only: videos are noise.\n")
    layout = ModelLayout.from_models_dir(root)
    return layout.require(["unet", "pose_net", "face_encoder", "face_embedder", "svd", "dwpose_detector",
                           "dwpose_estimator", "insightface_root"])
