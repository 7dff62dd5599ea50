"""HJB face optimisation of the predicted clean latent (official ``EulerDiscreteSchedulerPro.step``, refine_face).

At a refined denoising step the sampler computes x0 from the model output, calls ``FaceRefiner.refine(x0, lr)``
and uses the returned latent in the Euler update. ``refine`` runs ``num_iterations`` steps of a fresh Adam on x0:
decode -> [-1, 1] images -> crop every frame's face box -> 112x112 -> face net -> mean(|1 - cos(e_k, e_ref)|).
Frames without a box are left out of the mean; with no box at all refinement is skipped (logged once).
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, MutableMapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..boxes import FaceBox
from ..errors import InputError
from ..sampling.parallel import WorkSplit, all_reduce_sum
from .decode import conv_receptive_radius, decode_chunk_differentiable, to_face_range, vae_downscale
from .faces import check_box, crop_face, union_box
from .settings import HJBSettings

logger = logging.getLogger(__name__)

IterationCallback = Callable[[int, float], None]
CancelCheck = Callable[[], None]


def _autograd_ready(module: nn.Module) -> nn.Module:
    # ComfyUI runs nodes under torch.inference_mode(); weights created there are inference tensors, which autograd
    # refuses to save for backward. Such a module gets a private normal copy (costs its size once).
    tensors = list(module.parameters()) + list(module.buffers())
    if not any(t.is_inference() for t in tensors):
        return module
    logger.debug("HJB: %s was loaded under inference mode; using a gradient-capable copy", type(module).__name__)
    with torch.inference_mode(False):
        return copy.deepcopy(module)  # deepcopy clones every tensor, and a clone made here is a normal tensor


class FaceRefiner:
    """Optimises x0 towards the reference face identity; one instance per generation (boxes and models fixed).

    Args:
        vae: diffusers ``AutoencoderKLTemporalDecoder`` (only ``.decoder`` and ``.config.scaling_factor`` are used);
            it must be on the device of the latents, in float32 (fast mode autocasts it).
        face_net: the IResNet face network (e.g. ``models.iresnet.load_iresnet_file``), on the same device.
        reference_embedding: ``[1, D]`` or ``[D]`` embedding of the reference face (``faces.reference_face_embedding``).
        target_boxes: one inclusive ``(y0, y1, x0, x1)`` box per frame at the generation size, or None (skipped).
        settings: iterations, mode and chunking (``HJBSettings``).
        on_iteration: ``f(iteration_index, loss)`` after every Adam step; it may raise (e.g. on user interrupt),
            and the exception propagates with nothing left behind.
        check_cancel: ``f()`` called between the per-chunk decodes and between the decoder's layers in every
            forward, recomputation and backward pass, so that a user interrupt (which ``f`` raises) is seen within
            seconds even when one iteration takes minutes; the exception propagates with nothing left behind.
        recorder: optional dict; the first ``refine`` call's first iteration stores ``hjb_first_face_crops``
            ``[n, 3, 112, 112]`` and ``hjb_first_pred_face_embedding`` ``[n, D]`` (n = frames with a box).
        split: several processes sampling one video (``torchrun``) divide the decode chunks among them in the
            chunked modes; each chunk's gradient covers its own frames only, so summing the processes' gradients
            is exact and every process takes the same Adam step. Not used in faithful mode (one backward over
            all chunks) nor in fp16 fast mode (its loss scale evolves per chunk).

    Models whose weights are inference tensors (loaded under ``torch.inference_mode``) are copied once here, so
    place them on their device before building the refiner. Nothing is changed on the models passed in.
    """

    def __init__(
        self,
        vae: nn.Module,
        face_net: nn.Module,
        reference_embedding: torch.Tensor,
        target_boxes: Sequence[Optional[FaceBox]],
        settings: HJBSettings = HJBSettings(),
        on_iteration: Optional[IterationCallback] = None,
        recorder: Optional[MutableMapping[str, torch.Tensor]] = None,
        split: Optional[WorkSplit] = None,
        check_cancel: Optional[CancelCheck] = None,
    ):
        self.settings = settings
        self.check_cancel = check_cancel
        self.decoder = _autograd_ready(vae.decoder)
        self.face_net = _autograd_ready(face_net)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.downscale = vae_downscale(vae)
        with torch.inference_mode(False):
            self.reference = reference_embedding.detach().float().reshape(1, -1).clone()
        self.boxes: list[Optional[FaceBox]] = [None if b is None else tuple(int(v) for v in b) for b in target_boxes]
        self.valid = [k for k, b in enumerate(self.boxes) if b is not None]
        self.margin = settings.fast_margin if settings.fast_margin is not None else conv_receptive_radius(self.decoder)
        self.on_iteration = on_iteration
        self.recorder = recorder
        self._recorded = False
        self._warned_empty = False
        self._fp16_scale = 2.0**16  # fast-mode fp16 loss scale; only ever lowered, on overflow
        fp16_fast = settings.mode == "fast" and settings.fast_dtype == torch.float16
        splittable = split is not None and split.active and settings.mode != "faithful" and not fp16_fast
        self.split = split if splittable else None
        if split is not None and split.active and not splittable:
            logger.info("HJB: %s mode runs on every process (its chunks cannot be split exactly)",
                        "fp16 fast" if fp16_fast else settings.mode)

    # ------------------------------------------------------------------ public

    def refine(self, x0: torch.Tensor, learning_rate: float) -> tuple[torch.Tensor, list[float]]:
        """``num_iterations`` Adam steps on ``x0 [1, F, C, h, w]``; returns ``(refined x0 fp32, losses)``."""
        self._check(x0)
        if not self.valid:
            if not self._warned_empty:
                logger.warning("HJB face optimisation skipped: no frame has a face box")
                self._warned_empty = True
            return x0.detach().float().clone(), []
        with torch.inference_mode(False), torch.enable_grad():
            z = x0.detach().float().clone().requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=float(learning_rate))
            reference = self.reference.to(z.device)
            iteration = self._iteration_all if self.settings.mode == "faithful" else self._iteration_chunked
            losses: list[float] = []
            for it in range(self.settings.num_iterations):
                optimizer.zero_grad(set_to_none=True)
                loss = iteration(z, reference, record=self.recorder is not None and not self._recorded)
                self._recorded = self._recorded or self.recorder is not None
                optimizer.step()
                losses.append(loss)
                if self.on_iteration is not None:
                    self.on_iteration(it, loss)
            refined = z.detach()
        return refined, losses

    def gradient(self, x0: torch.Tensor) -> tuple[float, torch.Tensor]:
        """One iteration's loss and its gradient with respect to x0 (no optimiser step; for tests and benchmarks)."""
        self._check(x0)
        if not self.valid:
            return 0.0, torch.zeros_like(x0, dtype=torch.float32)
        with torch.inference_mode(False), torch.enable_grad():
            z = x0.detach().float().clone().requires_grad_(True)
            iteration = self._iteration_all if self.settings.mode == "faithful" else self._iteration_chunked
            loss = iteration(z, self.reference.to(z.device), record=False)
            return loss, z.grad.detach()

    # ------------------------------------------------------------------ internals

    def _check(self, x0: torch.Tensor) -> None:
        if x0.ndim != 5 or x0.shape[0] != 1:
            raise InputError(f"HJB expects latents [1, frames, C, h, w], got {tuple(x0.shape)}")
        if x0.shape[1] != len(self.boxes):
            raise InputError(f"HJB has {len(self.boxes)} face boxes for {x0.shape[1]} frames")
        for name, module in (("VAE decoder", self.decoder), ("face network", self.face_net)):
            device = next(module.parameters()).device
            if device != x0.device:
                raise InputError(f"HJB: the {name} is on {device} but the latents are on {x0.device}")
        height, width = x0.shape[-2] * self.downscale, x0.shape[-1] * self.downscale
        for k in self.valid:
            check_box(self.boxes[k], height, width, f"face box of frame {k}")

    def _cancel_point(self) -> None:
        if self.check_cancel is not None:
            self.check_cancel()

    def _chunks(self, num_frames: int) -> list[tuple[int, int]]:
        size = self.settings.decode_chunk_size
        return [(i, min(i + size, num_frames)) for i in range(0, num_frames, size)]

    def _frame_losses(
        self, images: torch.Tensor, frames: list[int], reference: torch.Tensor, origin: tuple[int, int],
        first_frame: int, record: bool, autocast: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        crops = torch.cat([crop_face(images[k - first_frame], self.boxes[k], origin) for k in frames])
        with self._autocast(enabled=autocast, device=crops.device):
            emb = self.face_net(crops)
        emb = emb.float()
        cos = F.cosine_similarity(emb, reference.expand(len(frames), -1), dim=1, eps=1e-8)
        return (1 - cos).abs(), crops, emb

    def _record(self, crops: list[torch.Tensor], embs: list[torch.Tensor]) -> None:
        self.recorder["hjb_first_face_crops"] = torch.cat(crops).detach().float().cpu()
        self.recorder["hjb_first_pred_face_embedding"] = torch.cat(embs).detach().float().cpu()

    def _autocast(self, enabled: bool, device: torch.device):
        dtype = self.settings.fast_dtype
        return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled and dtype != torch.float32)

    def _iteration_all(self, z: torch.Tensor, reference: torch.Tensor, record: bool) -> float:
        # Official order: every chunk decoded with its graph kept, one loss, one backward. Blocks are checkpointed
        # as inference_op.py --gradient_checkpointing does (same numbers, same memory profile).
        num_frames = z.shape[1]
        latents = z.flatten(0, 1) * (1.0 / self.scaling_factor)
        decoded = []
        for a, b in self._chunks(num_frames):
            self._cancel_point()
            decoded.append(decode_chunk_differentiable(self.decoder, latents[a:b], b - a, "blocks", self.check_cancel))
        images = to_face_range(torch.cat(decoded))
        per_frame, crops, emb = self._frame_losses(images, self.valid, reference, (0, 0), 0, record)
        loss = per_frame.mean()
        if record:
            self._record([crops], [emb])
        loss.backward(inputs=[z])  # only x0's gradient; frozen or not, model weights get no .grad
        self._cancel_point()
        return float(loss.detach())

    def _iteration_chunked(self, z: torch.Tensor, reference: torch.Tensor, record: bool) -> float:
        # The temporal decoder mixes frames only inside a decode chunk and the loss is a mean over frames, so
        # sum_c (n_c / n) * mean_c == the faithful mean and per-chunk gradients add up to the faithful gradient,
        # while only one chunk's activations are alive at a time.
        fast = self.settings.mode == "fast"
        z.grad = torch.zeros_like(z)
        chunks = [(a, b, [k for k in self.valid if a <= k < b]) for a, b in self._chunks(z.shape[1])]
        chunks = [c for c in chunks if c[2]]  # no loss term depends on the decode of a chunk without faces
        chunk_losses = torch.zeros(len(chunks), dtype=torch.float64)
        crops_seen, embs_seen = [], []
        for ci, (a, b, frames) in enumerate(chunks):
            if self.split is not None and ci % self.split.world_size != self.split.rank:
                continue  # another process's chunk
            rows, cols, origin = slice(None), slice(None), (0, 0)
            if fast:
                rows, cols, origin = self._face_window(z.shape[-2:], [self.boxes[k] for k in frames])
            region = (0, slice(a, b), slice(None), rows, cols)
            leaf = z.detach()[region].clone().requires_grad_(True)
            self._cancel_point()
            with self._autocast(enabled=fast, device=z.device):
                decoded = decode_chunk_differentiable(self.decoder, leaf * (1.0 / self.scaling_factor), b - a, "layers",
                                         self.check_cancel)
            images = to_face_range(decoded.float())
            per_frame, crops, emb = self._frame_losses(images, frames, reference, origin, a, record, autocast=fast)
            loss = per_frame.mean() * (len(frames) / len(self.valid))
            z.grad[region] += self._chunk_gradient(loss, leaf)
            self._cancel_point()
            chunk_losses[ci] = float(loss.detach())
            if record:
                crops_seen.append(crops.detach())
                embs_seen.append(emb.detach())
            del decoded, images, per_frame, crops, emb, loss, leaf
        if self.split is not None:
            # each chunk's gradient and loss are non-zero on one process only: the sums are exact
            all_reduce_sum(z.grad)
            chunk_losses = all_reduce_sum(chunk_losses.to(z.device)).cpu()
        if record and self.split is None:
            self._record(crops_seen, embs_seen)
        total = 0.0
        for value in chunk_losses.tolist():  # the single-process order of additions
            total += value
        return total

    def _chunk_gradient(self, loss: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        if not (self.settings.mode == "fast" and self.settings.fast_dtype == torch.float16):
            return torch.autograd.grad(loss, leaf)[0]
        # fp16 backward underflows the small decoder gradients (most of them flush to zero without scaling):
        # scale the loss as torch.amp.GradScaler does, halving the scale on overflow and retrying the chunk.
        for _ in range(32):
            grad = torch.autograd.grad(loss * self._fp16_scale, leaf, retain_graph=True)[0]
            if torch.isfinite(grad).all():
                return grad / self._fp16_scale
            self._fp16_scale /= 2
        raise FloatingPointError("HJB fast mode: fp16 gradients overflow at every loss scale; use bf16")

    def _face_window(self, latent_hw: tuple[int, int], boxes: list[FaceBox]) -> tuple[slice, slice, tuple[int, int]]:
        """Latent rows/columns around the union of ``boxes`` plus ``margin``, and that window's pixel origin."""
        y0, y1, x0, x1 = union_box(boxes)
        s, m = self.downscale, self.margin
        h, w = latent_hw
        ly0, ly1 = max(0, y0 // s - m), min(h - 1, y1 // s + m)
        lx0, lx1 = max(0, x0 // s - m), min(w - 1, x1 // s + m)
        return slice(ly0, ly1 + 1), slice(lx0, lx1 + 1), (ly0 * s, lx0 * s)
