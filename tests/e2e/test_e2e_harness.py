"""The e2e harness against a real ComfyUI: core-only workflows on the session server, and the failure paths
(pack import error, node exception, interrupt, timeout) on a second server with small probe packs."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.e2e.comfy_server import ComfyServer, PackImportError
from tools.workflow_tools import UIGraph, check_workflow, input_specs, load_object_info

CORE_OBJECT_INFO = Path(__file__).parents[2] / "tools" / "data" / "core_object_info.json"


def make_png(path: Path, width: int = 64, height: int = 48) -> Path:
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)).save(path)
    return path


# ------------------------------------------------------------------------------------------------ session server

def test_core_workflow_makes_a_decodable_mp4(comfy_core_server: ComfyServer, tmp_path: Path):
    srv = comfy_core_server
    name = srv.add_input_file(make_png(tmp_path / "e2e_ramp.png"))
    g = UIGraph(srv.object_info())
    load = g.node("LoadImage", [name, "image"])
    scale = g.node("ImageScale", ["bilinear", 64, 48, "disabled"])
    reroute = g.node("Reroute", None)
    repeat = g.node("RepeatImageBatch", [3])
    video = g.node("CreateVideo", [8.0])
    save = g.node("SaveVideo", ["video/e2e_harness", "mp4", "h264"])
    g.node("MarkdownNote", ["not executed"])
    g.link(load, 0, scale, "image")
    g.link(scale, 0, reroute)
    g.link(reroute, 0, repeat, "image")
    g.link(repeat, 0, video, "images")
    g.link(video, 0, save, "video")
    ui = g.to_json()
    # The static checker agrees with the live server about this workflow.
    assert check_workflow(ui, srv.object_info()) == []

    res = srv.run_workflow(ui, overrides={repeat: {"amount": 5}}, timeout=120).raise_for_status()

    mp4s = [f for f in res.files if f.suffix == ".mp4"]
    assert len(mp4s) == 1 and mp4s[0].is_relative_to(srv.output_dir / "video")
    with av.open(str(mp4s[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    assert frames[0][:, -1].mean() > frames[0][:, 0].mean() + 100  # the ramp survived encoding
    assert res.events("executing") and res.roundtrip_s < 60


def test_missing_input_file_is_a_clean_validation_error(comfy_core_server: ComfyServer):
    srv = comfy_core_server
    g = UIGraph(srv.object_info())
    load = g.node("LoadImage", ["e2e_does_not_exist.png", "image"])
    save = g.node("SaveImage", ["e2e_never"])
    g.link(load, 0, save, "images")

    res = srv.run_workflow(g.to_json(), timeout=30)

    assert res.status == "invalid" and res.prompt_id is None and res.files == []
    node_errors = res.validation_error["node_errors"]
    assert list(node_errors) == [str(load)] and node_errors[str(load)]["class_type"] == "LoadImage"
    assert "e2e_does_not_exist.png" in res.describe()
    with pytest.raises(AssertionError, match="e2e_does_not_exist.png"):
        res.raise_for_status()


def test_core_object_info_file_matches_the_live_server(comfy_core_server: ComfyServer):
    """tools/data/core_object_info.json (used by CI without ComfyUI) still describes this ComfyUI's nodes."""
    live = comfy_core_server.object_info()
    for name, saved in load_object_info(CORE_OBJECT_INFO).items():
        assert name in live, name
        assert _shape(live[name]) == _shape(saved), name


def _shape(node_def: dict) -> tuple:
    # What workflows depend on; file lists (combo options of uploads and models) vary with the machine.
    return ([(s.name, s.type, s.required, s.is_widget, s.extra_values) for s in input_specs(node_def)],
            node_def["output"], node_def.get("output_node"))


# ------------------------------------------------------------------------------------------------ probe server

PROBE_PACK = '''
import time

class E2EProbe_Fail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "boom"})}}
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "e2e_probe"

    def run(self, message):
        raise RuntimeError("probe failure: " + message)


class E2EProbe_Wait:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 30.0, "min": 0.0, "max": 600.0})}}
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "e2e_probe"

    def run(self, seconds):
        import comfy.model_management as mm
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            mm.throw_exception_if_processing_interrupted()
            time.sleep(0.02)
        return {"ui": {"text": ["waited"]}, "result": ()}


class E2EProbe_Seed:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**63, "control_after_generate": True}),
                             "label": ("STRING", {"default": "x"})}}
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "e2e_probe"

    def run(self, seed, label):
        return {"ui": {"text": [f"{label}={seed}"]}, "result": ()}


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (E2EProbe_Fail, E2EProbe_Wait, E2EProbe_Seed)}
'''


@pytest.fixture(scope="module")
def probe_server(comfy_env: dict, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("probe_packs")
    (root / "ok").mkdir()
    (root / "ok" / "__init__.py").write_text(textwrap.dedent(PROBE_PACK))
    (root / "broken").mkdir()
    (root / "broken" / "__init__.py").write_text("raise ImportError('probe pack is broken on purpose')\n")
    with ComfyServer(**comfy_env, packs={"e2e_probe_ok": root / "ok", "e2e_probe_broken": root / "broken"}) as srv:
        yield srv


def single(prompt_nodes: dict) -> dict:
    return {"1": prompt_nodes}


def test_pack_registration_is_checked_and_import_errors_carry_the_traceback(probe_server: ComfyServer):
    assert probe_server.require_pack("e2e_probe_ok") == ["E2EProbe_Fail", "E2EProbe_Seed", "E2EProbe_Wait"]
    with pytest.raises(PackImportError) as err:
        probe_server.require_pack("e2e_probe_broken")
    message = str(err.value)
    assert "Traceback (most recent call last)" in message
    assert "ImportError: probe pack is broken on purpose" in message
    assert "e2e_probe_broken" in message


def test_node_exception_is_reported_with_its_traceback(probe_server: ComfyServer):
    res = probe_server.run_prompt(single({"class_type": "E2EProbe_Fail", "inputs": {"message": "e2e"}}), timeout=30)
    assert res.status == "error"
    assert res.execution_error["exception_type"] == "RuntimeError"
    assert res.execution_error["exception_message"].strip() == "probe failure: e2e"
    assert "probe failure: e2e" in res.describe() and "__init__.py" in res.describe()


def test_interrupt_stops_a_running_prompt(probe_server: ComfyServer):
    def interrupt_when_started(kind: str, data: dict) -> None:
        if kind == "executing" and data.get("node") == "1":
            probe_server.interrupt()

    res = probe_server.run_prompt(single({"class_type": "E2EProbe_Wait", "inputs": {"seconds": 60.0}}),
                                  timeout=30, on_event=interrupt_when_started)
    assert res.status == "interrupted" and res.roundtrip_s < 20


def test_timeout_leaves_the_server_usable(probe_server: ComfyServer):
    res = probe_server.run_prompt(single({"class_type": "E2EProbe_Wait", "inputs": {"seconds": 60.0}}), timeout=1.0)
    assert res.status == "timeout"
    again = probe_server.run_prompt(single({"class_type": "E2EProbe_Wait", "inputs": {"seconds": 0.0}}), timeout=30)
    assert again.status == "success" and again.outputs["1"]["text"] == ["waited"]


def test_seed_control_value_is_converted_for_a_custom_v1_node(probe_server: ComfyServer):
    g = UIGraph(probe_server.object_info())
    node = g.node("E2EProbe_Seed", [123456789, "randomize", "seed"])
    ui = g.to_json()
    assert check_workflow(ui, probe_server.object_info()) == []
    res = probe_server.run_workflow(json.loads(json.dumps(ui)), timeout=30).raise_for_status()
    assert res.outputs[str(node)]["text"] == ["seed=123456789"]
