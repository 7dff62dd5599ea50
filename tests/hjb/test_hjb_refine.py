"""FaceRefiner against the parity fixture (official HJB on tiny random weights), without the UNet.

The recorded per-step inputs (``step{k}_sample_in``, ``step{k}_model_output_guided``, ``step{k}_sigma``) go through
x0 prediction + FaceRefiner + the Euler update and must give ``step{k}_prev_sample`` within the fixture's
tolerances. The modes are also checked against each other and for skipped frames / interrupts.
"""

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from stableanimator_core.errors import InputError
from stableanimator_core.hjb import FaceRefiner, HJBSettings, decode_chunk_differentiable, reference_face_embedding
from stableanimator_core.loading.components import load_vae
from stableanimator_core.loading.iresnet_file import load_iresnet_file
from stableanimator_core.sampling.scheduler import euler_update, predict_x0


def load_tiny_vae(parity) -> torch.nn.Module:
    """The fixture's tiny SVD temporal VAE through the pack's own loader (strict, frozen, eval)."""
    config = json.loads((parity / "weights" / "configs.json").read_text())["vae"]
    return load_vae(parity / "weights" / "vae.safetensors", config)


@pytest.fixture(scope="module")
def models(parity):
    vae = load_tiny_vae(parity)
    net = load_iresnet_file(parity / "weights" / "face_embedding_extractor.safetensors")
    inputs = json.loads((parity / "inputs" / "inputs.json").read_text())
    rgb = load_file(str(parity / "inputs" / "inputs.safetensors"))["reference_rgb_uint8"].to(torch.uint8)
    ref, _ = reference_face_embedding(net, rgb, tuple(inputs["reference_bbox_yyxx"]))
    boxes = [tuple(b) for b in inputs["target_bboxes_yyxx"]]
    return vae, net, ref, boxes, inputs["hjb"]


def _run(parity, name: str):
    return load_file(str(parity / name / "tensors.safetensors")), json.loads((parity / name / "meta.json").read_text())


def _settings(hjb: dict, **kw) -> HJBSettings:
    kw.setdefault("num_iterations", hjb["num_optimization_iter"])
    return HJBSettings(start_step=hjb["start_refine_step"],
                       end_step=hjb["end_refine_step"], eta=hjb["eta_scheduler"], **kw)


def _x0(t: dict, k: int) -> torch.Tensor:
    return predict_x0(t[f"step{k}_model_output_guided"], t[f"step{k}_sample_in"], t[f"step{k}_sigma"][0])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _replay(models, parity, run: str, **settings_kw):
    """Every step of a run from its recorded inputs; returns per-step prev samples, losses and the recorder."""
    vae, net, ref, boxes, hjb = models
    t, meta = _run(parity, run)
    settings = _settings(hjb, **settings_kw)
    recorder: dict = {}
    refiner = FaceRefiner(vae, net, ref, boxes, settings, recorder=recorder)
    outs, losses = [], []
    for k in range(meta["steps"]):
        x0 = _x0(t, k)
        if settings.is_refined(k):
            x0, step_losses = refiner.refine(x0, settings.learning_rate(k, meta["steps"]))
            losses += step_losses
        sigma_next = torch.tensor(meta["sigmas"][k + 1], dtype=torch.float32)
        outs.append(euler_update(t[f"step{k}_sample_in"], x0, t[f"step{k}_sigma"][0], sigma_next))
    return t, meta, outs, losses, recorder


@pytest.mark.parametrize("run", ["B_hjb_op_faithful", "C_hjb_tiled"])
def test_faithful_mode_reproduces_the_official_run(models, run, parity):
    t, meta, outs, losses, recorder = _replay(models, parity, run)
    assert _rel(recorder["hjb_first_face_crops"], t["hjb_first_face_crops"]) < 1e-4
    assert _rel(recorder["hjb_first_pred_face_embedding"], t["hjb_first_pred_face_embedding"]) < 1e-4
    assert len(losses) == len(meta["hjb_losses"]) == 4
    assert max(abs(a - b) for a, b in zip(losses, meta["hjb_losses"])) < 1e-3
    for k, out in enumerate(outs):
        want = t[f"step{k}_prev_sample"]
        assert float((out - want).abs().mean()) <= 1e-2 * float(want.abs().mean()), k
    # measured: mean-abs ratio ~1e-5 at the refined steps; HJB moved x0 by ~0.19 per element at step 0, so a
    # refiner that did nothing would be far off
    unrefined = euler_update(t["step0_sample_in"], _x0(t, 0), t["step0_sigma"][0],
                             torch.tensor(meta["sigmas"][1], dtype=torch.float32))
    assert float((unrefined - t["step0_prev_sample"]).abs().mean()) > 1e-2 * float(t["step0_prev_sample"].abs().mean())


def test_decode_matches_vae_decode_for_every_checkpointing(models):
    vae = models[0]
    torch.manual_seed(0)
    z = torch.randn(3, 4, 16, 8)
    with torch.no_grad():
        want = vae.decode(z, num_frames=3).sample
    for mode in ("none", "blocks", "layers"):
        got = decode_chunk_differentiable(vae.decoder, z.clone().requires_grad_(True), 3, mode)
        assert torch.allclose(got, want, rtol=0, atol=1e-6), mode


def test_memory_bounded_gradient_and_refinement_equal_faithful(models, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    results = {}
    for mode in ("faithful", "memory_bounded"):
        refiner = FaceRefiner(vae, net, ref, boxes, _settings(hjb, mode=mode))
        loss, grad = refiner.gradient(x0)
        refined, losses = refiner.refine(x0, 0.1)
        results[mode] = (loss, grad, refined, losses)
    (l_f, g_f, x_f, ls_f), (l_m, g_m, x_m, ls_m) = results["faithful"], results["memory_bounded"]
    assert g_f.abs().max() > 0
    assert float((g_f - g_m).abs().max() / g_f.abs().max()) < 1e-5  # measured 3e-7
    assert abs(l_f - l_m) < 1e-6
    assert max(abs(a - b) for a, b in zip(ls_f, ls_m)) < 1e-6
    # Adam is sign-like, so where the gradient is ~eps a 1e-7 change can move an element: measured max 7.6e-4,
    # mean 7e-7, against an HJB move of ~0.19 per element
    assert float((x_f - x_m).abs().max()) < 5e-3
    assert float((x_f - x_m).abs().mean()) < 1e-5
    assert float((x_f - x0).abs().mean()) > 0.1


def test_fast_mode_stays_within_the_fixture_tolerance(models, parity):
    t, meta, outs, losses, recorder = _replay(models, parity, "B_hjb_op_faithful", mode="fast")
    # measured (bf16, margin 12 = whole tiny frame): prev_sample mean-abs ratio 9e-4 / 5e-3, losses within 7e-4
    assert max(abs(a - b) for a, b in zip(losses, meta["hjb_losses"])) < 2e-3
    for k, out in enumerate(outs):
        want = t[f"step{k}_prev_sample"]
        assert float((out - want).abs().mean()) <= 1e-2 * float(want.abs().mean()), k
    assert _rel(recorder["hjb_first_pred_face_embedding"], t["hjb_first_pred_face_embedding"]) < 5e-2


def test_fast_mode_decodes_only_a_window_around_the_faces(models, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    refiner = FaceRefiner(vae, net, ref, boxes, _settings(hjb, mode="fast", fast_dtype="fp32", fast_margin=1))
    _, grad = refiner.gradient(x0)
    # boxes span y 6..35, x 18..49 -> latent rows 0..4, cols 2..6 (+1 margin): nothing outside gets a gradient
    assert grad[..., 6:, :].abs().max() == 0 and grad[..., :, :1].abs().max() == 0
    assert grad[..., :5, 2:7].abs().min() > 0


def test_frames_without_a_box_are_skipped(models, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    partial = [b if k in (1, 2, 7) else None for k, b in enumerate(boxes)]
    calls = []
    recorder: dict = {}
    for mode in ("faithful", "memory_bounded"):
        refiner = FaceRefiner(vae, net, ref, partial, _settings(hjb, mode=mode, num_iterations=1),
                              on_iteration=lambda i, loss: calls.append((i, loss)), recorder=recorder)
        loss, grad = refiner.gradient(x0)
        # chunks are frames 0-3, 4-7, 8: frame 8's chunk has no face, so no gradient reaches it
        assert grad[0, 8].abs().max() == 0 and grad[0, 0].abs().max() > 0
        refined, losses = refiner.refine(x0, 0.1)
        assert len(losses) == 1 and abs(losses[0] - loss) < 1e-6
        assert torch.equal(refined[0, 8], x0[0, 8])
    assert recorder["hjb_first_face_crops"].shape == (3, 3, 112, 112)
    assert [i for i, _ in calls] == [0, 0]
    # the loss is the mean over the three frames with a box (gradient() also works under the caller's no_grad)
    with torch.no_grad():
        single = [FaceRefiner(vae, net, ref, [b if j == k else None for j, b in enumerate(boxes)],
                              _settings(hjb)).gradient(x0)[0] for k in (1, 2, 7)]
    assert abs(loss - sum(single) / 3) < 1e-6


def test_no_box_at_all_is_a_logged_no_op(models, caplog, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    refiner = FaceRefiner(vae, net, ref, [None] * len(boxes), _settings(hjb),
                          on_iteration=lambda i, loss: pytest.fail("no iteration expected"))
    with caplog.at_level(logging.WARNING):
        refined, losses = refiner.refine(x0, 0.1)
    assert losses == [] and torch.equal(refined, x0)
    assert "no frame has a face box" in caplog.text


def test_on_iteration_exception_propagates_and_leaves_no_grad_state(models, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)

    class Interrupted(Exception):
        pass

    def interrupt(i, loss):
        raise Interrupted(i)

    for mode in ("faithful", "memory_bounded"):
        refiner = FaceRefiner(vae, net, ref, boxes, _settings(hjb, mode=mode, num_iterations=1),
                              on_iteration=interrupt)
        with torch.no_grad():  # the sampler's own grad mode must survive the exception
            with pytest.raises(Interrupted):
                refiner.refine(x0, 0.1)
            assert not torch.is_grad_enabled()
        assert all(p.grad is None for p in list(vae.parameters()) + list(net.parameters()))
        assert not any(p.requires_grad for p in net.parameters())
        assert not x0.requires_grad and x0.grad is None
    # the refiner still works afterwards, and equals a fresh one
    refiner.on_iteration = None
    again, _ = refiner.refine(x0, 0.1)
    fresh, _ = FaceRefiner(vae, net, ref, boxes, _settings(hjb, mode="memory_bounded", num_iterations=1)).refine(x0, 0.1)
    assert torch.equal(again, fresh)


def test_runs_under_inference_mode_with_models_loaded_there(models, parity):
    _, _, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    with torch.inference_mode():  # how ComfyUI executes nodes
        vae = load_tiny_vae(parity)
        net = load_iresnet_file(parity / "weights" / "face_embedding_extractor.safetensors")
        x0 = _x0(t, 0)
        refiner = FaceRefiner(vae, net, ref.clone(), boxes, _settings(hjb, num_iterations=1))
        refined, losses = refiner.refine(x0, 0.1)
    assert abs(losses[0] - 0.5637770295143127) < 1e-5
    assert float((refined - x0).abs().mean()) > 0.05


def test_input_validation(models):
    vae, net, ref, boxes, hjb = models
    refiner = FaceRefiner(vae, net, ref, boxes, _settings(hjb))
    with pytest.raises(InputError, match="9 face boxes for 4 frames"):
        refiner.refine(torch.zeros(1, 4, 4, 16, 8), 0.1)
    with pytest.raises(InputError, match=r"\[1, frames"):
        refiner.refine(torch.zeros(9, 4, 16, 8), 0.1)
    outside = FaceRefiner(vae, net, ref, [(0, 200, 0, 10)] * 9, _settings(hjb))
    with pytest.raises(InputError, match="frame 0"):
        outside.refine(torch.zeros(1, 9, 4, 16, 8), 0.1)


def _decoder_layers(vae) -> int:
    """Layers decode_chunk_differentiable checks between: mid-block resnets and attentions, up-block resnets and upsamplers,
    the output head."""
    dec = vae.decoder
    mid = len(dec.mid_block.resnets) + len(dec.mid_block.attentions)
    return mid + sum(len(b.resnets) + len(b.upsamplers or ()) for b in dec.up_blocks) + 1


@pytest.mark.parametrize("mode", ["faithful", "memory_bounded", "fast"])
def test_check_cancel_runs_between_layers_and_changes_nothing(models, mode, parity):
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    settings = _settings(hjb, mode=mode, num_iterations=1)
    plain, plain_losses = FaceRefiner(vae, net, ref, boxes, settings).refine(x0, 0.1)
    calls = []
    checked, checked_losses = FaceRefiner(vae, net, ref, boxes, settings,
                                          check_cancel=lambda: calls.append(torch.is_grad_enabled())).refine(x0, 0.1)
    assert torch.equal(plain, checked) and plain_losses == checked_losses
    chunks = len([a for a in range(0, x0.shape[1], settings.decode_chunk_size)
                  if any(a <= k < a + settings.decode_chunk_size for k, b in enumerate(boxes) if b is not None)])
    # every layer checks in its forward and when backward reaches it (checkpointed ones again when recomputed)
    assert len(calls) >= 2 * _decoder_layers(vae) * chunks, (len(calls), _decoder_layers(vae), chunks)


@pytest.mark.parametrize("mode", ["faithful", "memory_bounded"])
def test_check_cancel_stops_inside_the_forward_and_inside_the_backward(models, mode, parity):
    """An interrupt raised from check_cancel at any point of an iteration (first decode layer, the middle, the
    backward pass's last layers) propagates at once: the iteration never finishes and nothing is left behind."""
    vae, net, ref, boxes, hjb = models
    t, _ = _run(parity, "B_hjb_op_faithful")
    x0 = _x0(t, 0)
    settings = _settings(hjb, mode=mode, num_iterations=1)
    total = []
    FaceRefiner(vae, net, ref, boxes, settings, check_cancel=lambda: total.append(1)).refine(x0, 0.1)

    class Interrupted(Exception):
        pass

    for stop_at in (1, len(total) // 2, len(total) - 2):
        seen, finished = [], []

        def check():
            seen.append(1)
            if len(seen) == stop_at:
                raise Interrupted(stop_at)

        refiner = FaceRefiner(vae, net, ref, boxes, settings, check_cancel=check,
                              on_iteration=lambda i, loss: finished.append(i))
        with torch.no_grad():
            with pytest.raises(Interrupted):
                refiner.refine(x0, 0.1)
            assert not torch.is_grad_enabled()
        assert len(seen) == stop_at and not finished, (stop_at, len(seen), finished)
        assert all(p.grad is None for p in list(vae.parameters()) + list(net.parameters()))
        assert not x0.requires_grad and x0.grad is None
