"""Builds each StableAnimator component from its configuration and fills it from its checkpoint.

Configurations come from the SVD-xt diffusers folder (``unet/config.json`` for the UNet architecture,
``vae/`` and ``image_encoder/`` with their weights) or are read off the small checkpoints' shapes
(PoseNet, face encoder, IResNet), so the same code loads the released files, safetensors copies, the
parity fixture and the tiny test models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..errors import CheckpointError
from ..models.acceleration import UNetOptions, apply_unet_options
from ..models.face_encoder import FusionFaceId
from ..models.pose_net import PoseNet
from ..models.unet import StableAnimatorUNet, UNetConfig
from ..pipeline.decode import SVD_SCALING_FACTOR
from .bundle import StableAnimatorModels
from .checkpoints import build_on_meta, find_weights_file, load_into, load_state_dict, read_json
from .iresnet_file import load_iresnet_file

PathLike = str | os.PathLike

if TYPE_CHECKING:
    from .layout import ModelLayout


def _finish(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    model.requires_grad_(False)
    return model.eval().to(device)


def load_unet(path: PathLike, config: Optional[dict[str, Any]] = None, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> StableAnimatorUNet:
    """``Animation/unet.pth`` (or a safetensors copy) into the architecture of ``config`` (SVD-xt by default)."""
    cfg = UNetConfig.from_dict(config) if config else UNetConfig()
    model = build_on_meta(lambda: StableAnimatorUNet(cfg)).to(dtype)
    load_into(model, load_state_dict(path, "unet"), Path(path).name, "unet")
    return _finish(model, device)


def load_pose_net(path: PathLike, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> PoseNet:
    sd = load_state_dict(path, "pose_net")
    if "final_proj.weight" not in sd:
        raise CheckpointError(f"{Path(path).name} is not a PoseNet checkpoint (no final_proj.weight).")
    channels = sd["final_proj.weight"].shape[0]
    model = build_on_meta(lambda: PoseNet(channels)).to(dtype)
    load_into(model, sd, Path(path).name, "pose_net")
    return _finish(model, device)


def load_face_encoder(path: PathLike, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> FusionFaceId:
    sd = load_state_dict(path, "face_encoder")
    try:
        cross = sd["norm.weight"].shape[0]
        id_dim = sd["proj.0.weight"].shape[1]
        clip_dim = sd["fusion_model.proj_in.weight"].shape[1]
        tokens = sd["proj.2.weight"].shape[0] // cross
    except KeyError as exc:
        raise CheckpointError(f"{Path(path).name} is not a FusionFaceId face-encoder checkpoint (no {exc}).") from exc
    model = build_on_meta(lambda: FusionFaceId(cross, id_dim, clip_dim, tokens)).to(dtype)
    load_into(model, sd, Path(path).name, "face_encoder")
    return _finish(model, device)


def load_vae(weights: PathLike, config: dict[str, Any], device: torch.device | str = "cpu") -> torch.nn.Module:
    """SVD's temporal VAE in float32 (its encoder overflows in fp16; SVD sets ``force_upcast``)."""
    return _build_vae(config, load_state_dict(weights, "svd"), Path(weights).name, device)


def _build_vae(config: dict[str, Any], sd: dict[str, torch.Tensor], source: str,
               device: torch.device | str) -> torch.nn.Module:
    from diffusers import AutoencoderKLTemporalDecoder

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    model = build_on_meta(lambda: AutoencoderKLTemporalDecoder.from_config(cfg))
    load_into(model, sd, source, "svd")
    return _finish(model, device)


def vae_from_comfy_layout(sd: dict[str, torch.Tensor], source: str,
                          device: torch.device | str = "cpu") -> torch.nn.Module:
    """The same VAE from ComfyUI's key layout (a core ``VAE``'s weights, ``first_stage_model.*`` of
    ``svd_xt.safetensors``); the architecture is read off the shapes."""
    from .core_vae_layout import block_counts, comfy_to_diffusers, is_comfy_layout, strip_prefix

    sd = strip_prefix(sd)
    if not is_comfy_layout(sd):
        raise CheckpointError(f"{source} is not SVD's temporal VAE (no decoder.mid.block_1.mix_factor): use the VAE "
                              f"of svd_xt.safetensors (e.g. from ImageOnlyCheckpointLoader)")
    levels, blocks = block_counts(sd, "down", "block")
    sd = comfy_to_diffusers(sd)
    config = {
        "in_channels": sd["encoder.conv_in.weight"].shape[1],
        "out_channels": sd["decoder.conv_out.weight"].shape[0],
        "latent_channels": sd["decoder.conv_in.weight"].shape[1],
        "block_out_channels": [sd[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in range(levels)],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "layers_per_block": blocks,
        "scaling_factor": SVD_SCALING_FACTOR, "force_upcast": True,
    }
    return _build_vae(config, sd, source, device)


def load_image_encoder(weights: PathLike, config: dict[str, Any], dtype: torch.dtype = torch.float32,
                       device: torch.device | str = "cpu") -> torch.nn.Module:
    """CLIP ViT-H/14 vision tower with projection (transformers ``CLIPVisionModelWithProjection``)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(**{k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"})
    model = build_on_meta(lambda: CLIPVisionModelWithProjection(cfg)).to(dtype)
    load_into(model, load_state_dict(weights, "svd"), Path(weights).name, "svd")
    _materialize_position_ids(model)
    return _finish(model, device)


def _materialize_position_ids(model: torch.nn.Module) -> None:
    """Non-persistent buffers are not in the checkpoint and stay on ``meta``; CLIP has one, ``position_ids``."""
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                if name != "position_ids":
                    raise CheckpointError(f"internal: buffer {name} of {type(module).__name__} was not initialised")
                module.register_buffer(name, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)


def load_face_embedder(path: PathLike, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The IResNet face-recognition network for HJB (``glintr100_torch.pth``), float32, frozen."""
    return _finish(load_iresnet_file(path), device)


def svd_component(svd_dir: PathLike, component: str) -> tuple[Path, dict[str, Any]]:
    """(weights file, config) of ``vae`` or ``image_encoder`` in an SVD-xt diffusers folder."""
    folder = Path(svd_dir) / component
    if not folder.is_dir():
        raise CheckpointError(
            f"The SVD folder {svd_dir} has no {component}/ subfolder. It must be the diffusers layout of "
            f"stable-video-diffusion-img2vid-xt (feature_extractor/, image_encoder/, scheduler/, unet/, vae/)."
            f" Get it from {SVD_HINT}."
        )
    stems = (["diffusion_pytorch_model", "diffusion_pytorch_model.fp16"] if component == "vae"
             else ["model", "model.fp16", "pytorch_model", "pytorch_model.fp16"])
    return find_weights_file(folder, stems, "svd"), read_json(folder / "config.json")


def svd_unet_config(svd_dir: PathLike) -> Optional[dict[str, Any]]:
    """The UNet architecture from ``unet/config.json`` if present (its weights are never needed)."""
    path = Path(svd_dir) / "unet" / "config.json"
    return read_json(path) if path.is_file() else None


def svd_scheduler_config(svd_dir: PathLike) -> Optional[dict[str, Any]]:
    path = Path(svd_dir) / "scheduler" / "scheduler_config.json"
    return read_json(path) if path.is_file() else None


SVD_HINT = "https://huggingface.co/FrancisRing/StableAnimator (SVD/) or https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt"


def load_components(unet: PathLike, pose_net: PathLike, face_encoder: PathLike, svd_dir: Optional[PathLike],
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                    face_embedder: Optional[PathLike] = None,
                    unet_options: Optional[UNetOptions] = None) -> StableAnimatorModels:
    """Every component from explicit files and the SVD-xt folder. The VAE stays float32 (see :func:`load_vae`).
    Without the folder (``svd_dir=None``) there is no VAE and no CLIP image encoder, and the UNet has SVD-xt's
    architecture.

    ``unet_options`` (fp8 weight storage, torch.compile; see :mod:`..models.acceleration`) apply to the loaded UNet.
    """
    vae = image_encoder = None
    if svd_dir is not None:  # None: ComfyUI's own VAE and CLIP vision are given to the nodes instead
        vae = load_vae(*svd_component(svd_dir, "vae"), device)
        clip_file, clip_cfg = svd_component(svd_dir, "image_encoder")
        image_encoder = load_image_encoder(clip_file, clip_cfg, dtype, device)
    return StableAnimatorModels(
        unet=apply_unet_options(load_unet(unet, svd_unet_config(svd_dir) if svd_dir else None, dtype, device),
                                unet_options),
        pose_net=load_pose_net(pose_net, dtype, device),
        face_encoder=load_face_encoder(face_encoder, dtype, device),
        vae=vae,
        image_encoder=image_encoder,
        scheduler_config=svd_scheduler_config(svd_dir) if svd_dir else None,
        face_embedder=load_face_embedder(face_embedder, device) if face_embedder is not None else None,
    )


def load_models(layout: "ModelLayout", dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                with_face_embedder: bool = False, unet_options: Optional[UNetOptions] = None) -> StableAnimatorModels:
    """Every component from the official layout (see :mod:`layout`); missing files are listed together."""
    parts = ["unet", "pose_net", "face_encoder", "svd"] + (["face_embedder"] if with_face_embedder else [])
    layout.require(parts)
    return load_components(layout.unet, layout.pose_net, layout.face_encoder, layout.svd, dtype, device,
                           layout.face_embedder if with_face_embedder else None, unet_options)
