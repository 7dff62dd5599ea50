"""The bundled workflows: up to date with the node definitions, valid, and convertible to API prompts."""

from __future__ import annotations

import json

import pytest

import tools.workflow_builder as wb
from tools.workflow_tools import check_workflow, convert_ui_to_api, load_object_info

CORE = load_object_info(wb.DATA / "core_object_info.json")
THIRD_PARTY = load_object_info(wb.DATA / "third_party_object_info.json")
# combos whose options are the files present on the machine
ENV_COMBOS = [("StableAnimatorModelLoader", k) for k in ("unet", "pose_net", "face_encoder", "svd")] + [
    ("StableAnimatorHJBSettings", "face_model"), ("StableAnimatorDWPose", "detector"),
    ("StableAnimatorDWPose", "estimator"), ("UpscaleModelLoader", "model_name")]


@pytest.fixture(scope="module")
def defs(pack):
    return wb.node_defs()


@pytest.mark.parametrize("name", sorted(wb.WORKFLOWS_BUILT))
def test_committed_workflow_matches_the_builder(name, pack):
    committed = (wb.WORKFLOWS / name).read_text()
    assert committed == wb.render(wb.WORKFLOWS_BUILT[name]()), f"run `python tests/workflow_builder.py` ({name})"


@pytest.mark.parametrize("name", sorted(wb.WORKFLOWS_BUILT))
def test_workflow_is_valid(name, defs, pack):
    workflow = json.loads((wb.WORKFLOWS / name).read_text())
    assert check_workflow(workflow, defs, ENV_COMBOS) == []
    types = {n["type"] for n in workflow["nodes"]} - {"Note"}
    ours = set(pack.NODE_CLASS_MAPPINGS)
    allowed_third_party = set(THIRD_PARTY) if "rife" in name else set()
    assert types <= ours | set(CORE) | allowed_third_party
    sampler = "KSampler" if "ksampler" in name else "StableAnimatorSampler"
    assert sampler in types and "SaveVideo" in types and "StableAnimatorIdentityScore" in types
    assert sum(n["type"] == "Note" for n in workflow["nodes"]) >= 5  # every stage explained


def test_hjb_workflow_wires_face_masks_and_settings(defs):
    api = convert_ui_to_api(json.loads((wb.WORKFLOWS / "stableanimator_hjb.json").read_text()), defs)
    sampler = next(v for v in api.values() if v["class_type"] == "StableAnimatorSampler")
    assert api[sampler["inputs"]["hjb"][0]]["class_type"] == "StableAnimatorHJBSettings"
    source, slot = sampler["inputs"]["face_masks"]
    assert api[source]["class_type"] == "StableAnimatorDWPose" and slot == 2
    assert sampler["inputs"]["seed"] == 23123134 and sampler["inputs"]["steps"] == 25


def test_every_node_of_the_pack_appears_in_a_workflow(pack):
    used = set()
    for name in wb.WORKFLOWS_BUILT:
        used |= {n["type"] for n in json.loads((wb.WORKFLOWS / name).read_text())["nodes"]}
    assert set(pack.NODE_CLASS_MAPPINGS) - used == {"StableAnimatorPoseFromKeypoints"}  # needs another pack's input


def test_checker_catches_a_broken_copy(defs):
    workflow = json.loads((wb.WORKFLOWS / "stableanimator_basic.json").read_text())
    sampler = next(n for n in workflow["nodes"] if n["type"] == "StableAnimatorSampler")
    sampler["widgets_values"][2] = 0  # steps below min
    issues = check_workflow(workflow, defs, ENV_COMBOS)
    assert [i.kind for i in issues] == ["out_of_range"]
