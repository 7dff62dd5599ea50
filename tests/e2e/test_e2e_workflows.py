"""The bundled workflows run in a real ComfyUI (headless, CPU) against the tiny models folder.

Skipped unless COMFYUI_DIR is set (see tests/e2e/conftest.py). Set STABLEANIMATOR_E2E_ARTIFACTS=DIR to keep the
videos and the identity plot of each run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import av
import pytest

from tests.e2e.conftest import REPO_ROOT
from tests.e2e.small_settings import small_overrides

WORKFLOWS = REPO_ROOT / "example_workflows"
BASIC = "StableAnimator 1 - basic animation.json"
HJB = "StableAnimator 3 - HJB face identity boost.json"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def server(pack_server):
    yield pack_server
    if TIMES:
        print("\nwall time per workflow:", json.dumps(TIMES))


def _workflow(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


def _ids(workflow: dict[str, Any], node_type: str) -> list[int]:
    return [n["id"] for n in workflow["nodes"] if n["type"] == node_type]


def _small(workflow: dict[str, Any], **sampler: Any) -> dict[int, dict[str, Any]]:
    return small_overrides(workflow, StableAnimatorSampler=sampler)


def _keep(paths: list[Path], run: str) -> None:
    target = os.environ.get("STABLEANIMATOR_E2E_ARTIFACTS")
    if target:
        dest = Path(target) / run
        dest.mkdir(parents=True, exist_ok=True)
        for p in paths:
            shutil.copy2(p, dest / p.name)


def _check_video(result, frames: int, size: tuple[int, int]) -> Path:
    videos = [p for p in result.files if p.suffix == ".mp4"]
    assert len(videos) == 1, result.files
    with av.open(str(videos[0])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == frames and decoded[0].shape[:2] == size
    assert "StableAnimator" in str(videos[0].relative_to(videos[0].parents[1]))
    return videos[0]


WORKFLOW_NAMES = sorted(p.name for p in WORKFLOWS.glob("*.json"))


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_runs_as_bundled(server, name):
    """Every bundled workflow, as shipped but at small sizes: an h264 mp4 with a frame per driving frame (times the
    interpolation factor), the identity plot and summary, the pose preview."""
    workflow = _workflow(name)
    info = server.object_info()
    missing = sorted({n["type"] for n in workflow["nodes"] if n["type"] not in info and n["type"] != "Note"})
    if missing:
        pytest.skip(f"{name} needs nodes of packs not installed in this ComfyUI: {', '.join(missing)}")
    overrides = _small(workflow)
    # DWPose is not an output node, so its preview is sent when it runs, not from ComfyUI's cache; the workflows
    # share its inputs, so consecutive ones get different providers (the same skeletons on a CPU) and DWPose runs
    provider = ("cpu", "cuda", "auto")[WORKFLOW_NAMES.index(name) % 3]
    for nid in _ids(workflow, "StableAnimatorDWPose"):
        overrides[nid] = {"provider": provider}
    for nid in _ids(workflow, "UpscaleModelLoader"):
        models = info["UpscaleModelLoader"]["input"]["required"]["model_name"][1].get("options") or \
            info["UpscaleModelLoader"]["input"]["required"]["model_name"][0]
        if not models:
            pytest.skip("no upscale model in models/upscale_models")
        overrides[nid] = {"model_name": models[0]}
    start = time.monotonic()
    result = server.run_workflow(workflow, overrides=overrides, timeout=1800)
    TIMES[name] = round(time.monotonic() - start, 1)
    result.raise_for_status()
    interpolated = bool(_ids(workflow, "RIFE VFI"))
    scale = 2 if _ids(workflow, "ImageUpscaleWithModel") else 1
    video = _check_video(result, frames=31 if interpolated else 16, size=(128 * scale, 64 * scale))
    # the frame rate comes from the driving video (times the interpolation factor), not from a constant
    with av.open(str(WORKFLOWS / "inputs" / "stableanimator_driving.mp4")) as c:
        driving_fps = float(c.streams.video[0].average_rate)
    with av.open(str(video)) as c:
        assert float(c.streams.video[0].average_rate) == pytest.approx(driving_fps * (2 if interpolated else 1))
    plots = [p for p in result.files if p.suffix == ".png"]
    assert plots, "the identity plot (PreviewImage) was not saved"
    summary = [ev for ev in result.events("executed") if ev.get("output", {}).get("text")]
    assert summary and "identity" in summary[0]["output"]["text"][0]
    previews = [ev["output"]["stableanimator_pose_preview"] for ev in result.events("executed")
                if "stableanimator_pose_preview" in ev.get("output", {})]
    assert previews and len(previews[0][0]["frames"]) == 16
    _keep([video, *plots], Path(name).stem.replace(" ", "_"))


def test_missing_model_file_is_an_execution_error_naming_it(server, tiny_models_dir):
    """The loader's default file is absent on disk: execution stops with an error naming the file, the folder
    searched and where to get it (the combo keeps the official name selectable before the download)."""
    unet = tiny_models_dir / "stableanimator" / "Animation" / "unet.pth"
    moved = unet.with_suffix(".bak")
    unet.rename(moved)
    try:
        workflow = _workflow(BASIC)
        result = server.run_workflow(workflow, overrides=_small(workflow), timeout=600)
    finally:
        moved.rename(unet)
    assert result.status == "error", result.describe()
    error = result.execution_error
    assert error["node_type"] == "StableAnimatorModelLoader"
    assert "'Animation/unet.pth' not found" in error["exception_message"]
    assert "/models/stableanimator" in error["exception_message"]  # the folder searched (a link to tiny_models_dir)
    assert "huggingface.co/FrancisRing/StableAnimator" in error["exception_message"]


def test_no_face_in_reference_is_reported_and_server_keeps_running(server):
    workflow = _workflow(BASIC)
    server.add_input_file(REPO_ROOT / "tests" / "data" / "blank_reference.png")
    overrides = _small(workflow)
    for nid in _ids(workflow, "LoadImage"):
        overrides[nid] = {"image": "blank_reference.png"}
    result = server.run_workflow(workflow, overrides=overrides, timeout=600)
    assert result.status == "error", result.describe()
    # whichever of the two preprocessing nodes runs first reports it
    message, node = result.execution_error["exception_message"], result.execution_error["node_type"]
    if node == "StableAnimatorFaceEmbed":
        assert "No face found in the reference image" in message
    else:
        assert node == "StableAnimatorDWPose" and "reference" in message and "person" in message
    again = server.run_workflow(workflow, overrides=_small(workflow), timeout=900)
    again.raise_for_status()


def test_invalid_sampler_value_rejects_the_whole_prompt(server):
    """No part of an invalid prompt runs (DWPose used to, as an output node, and the API answered success)."""
    workflow = _workflow("StableAnimator 1 - basic animation.json")
    overrides = _small(workflow)
    for nid in _ids(workflow, "StableAnimatorSampler"):
        overrides[nid]["steps"] = 0  # below the widget's minimum
    result = server.run_workflow(workflow, overrides=overrides, timeout=120)
    assert result.status == "invalid", result.describe()
    assert "steps" in json.dumps(result.validation_error)


def test_interrupt_during_sampling(server):
    workflow = _workflow(BASIC)
    sampler_ids = {str(i) for i in _ids(workflow, "StableAnimatorSampler")}

    def on_event(kind, data):
        if kind == "progress" and str(data.get("node")) in sampler_ids and data.get("value", 0) >= 1:
            server.interrupt()

    result = server.run_workflow(workflow, overrides=_small(workflow, steps=20), timeout=900, on_event=on_event)
    assert result.status == "interrupted", result.describe()
    progress = [d["value"] for d in result.events("progress") if str(d.get("node")) in sampler_ids]
    assert progress and max(progress) <= 3  # stopped within a step or so of the request


def test_cancel_inside_an_hjb_iteration_returns_within_seconds(server):
    """The HJB workflow at its shipped size (512x512, 16 frames): Cancel while the first face-optimisation iteration
    runs (its decodes and backward passes take minutes on a CPU) ends the prompt within 10 s, without finishing it."""
    workflow = _workflow(HJB)
    sampler = str(_ids(workflow, "StableAnimatorSampler")[0])
    requested: list[float] = []

    def on_event(kind, data):
        # progress 1 = the first UNet call of step 0; the HJB iteration of that step starts right after it
        if kind == "progress" and str(data.get("node")) == sampler and data.get("value", 0) >= 1 and not requested:
            requested.append(time.monotonic())
            server.interrupt()

    result = server.run_workflow(workflow, timeout=1800, on_event=on_event)
    ended = time.monotonic()
    assert result.status == "interrupted", result.describe()
    progress = [d["value"] for d in result.events("progress") if str(d.get("node")) == sampler]
    assert requested and max(progress) == 1, progress  # no HJB iteration (each one reports progress) finished
    latency = ended - requested[0]
    print(f"\nCancel inside an HJB iteration at 512x512x16: prompt ended {latency:.1f} s after the request")
    assert latency < 10, f"Cancel took {latency:.1f} s inside an HJB iteration"
