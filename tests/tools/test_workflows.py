"""The bundled workflows: up to date with the node definitions, valid, and convertible to API prompts."""

from __future__ import annotations

import json

import pytest
from PIL import Image

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
    assert committed == wb.render(wb.WORKFLOWS_BUILT[name]()), f"run `python -m tools.workflow_builder` ({name})"


@pytest.mark.parametrize("name", sorted(wb.WORKFLOWS_BUILT))
def test_workflow_is_valid(name, defs, pack):
    workflow = json.loads((wb.WORKFLOWS / name).read_text())
    assert check_workflow(workflow, defs, ENV_COMBOS) == []
    types = {n["type"] for n in workflow["nodes"]} - {"Note"}
    ours = set(pack.NODE_CLASS_MAPPINGS)
    allowed_third_party = set(THIRD_PARTY) if name == wb.UPSCALE_RIFE else set()
    assert types <= ours | set(CORE) | allowed_third_party
    sampler = "KSampler" if name in (wb.KSAMPLER, wb.KSAMPLER_HJB) else "StableAnimatorSampler"
    assert sampler in types and "SaveVideo" in types and "StableAnimatorIdentityScore" in types
    assert sum(n["type"] == "Note" for n in workflow["nodes"]) >= 5  # every stage explained


def test_hjb_workflow_wires_face_masks_and_settings(defs):
    api = convert_ui_to_api(json.loads((wb.WORKFLOWS / wb.HJB).read_text()), defs)
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
    workflow = json.loads((wb.WORKFLOWS / wb.BASIC).read_text())
    sampler = next(n for n in workflow["nodes"] if n["type"] == "StableAnimatorSampler")
    sampler["widgets_values"][2] = 0  # steps below min
    issues = check_workflow(workflow, defs, ENV_COMBOS)
    assert [i.kind for i in issues] == ["out_of_range"]


def test_template_browser_entries_have_titles_thumbnails_and_order():
    """ComfyUI lists example_workflows/*.json in its template browser by file name, with <name>.jpg as thumbnail."""
    names = sorted(wb.WORKFLOWS_BUILT)
    assert sorted(p.name for p in wb.WORKFLOWS.glob("*.json")) == names
    assert wb.WORKFLOWS.name == "example_workflows" and not (wb.REPO / "workflows").exists()
    for number, name in enumerate(names, start=1):
        assert name.startswith(f"StableAnimator {number} - "), name  # a readable title; the number is the order
        jpg = wb.WORKFLOWS / f"{name[:-len('.json')]}.jpg"
        with Image.open(jpg) as image:
            assert image.format == "JPEG" and image.size == wb.THUMBNAIL_SIZE, jpg
    assert names[0] == wb.BASIC


@pytest.mark.parametrize("name", sorted(wb.WORKFLOWS_BUILT))
def test_foreign_nodes_name_their_pack_for_the_manager(name, pack):
    workflow = json.loads((wb.WORKFLOWS / name).read_text())
    for node in workflow["nodes"]:
        if node["type"] in pack.NODE_CLASS_MAPPINGS or node["type"] == "Note":
            continue
        properties = node.get("properties", {})
        assert properties.get("cnr_id"), (name, node["type"])
        if node["type"] in THIRD_PARTY:
            assert "/" in properties.get("aux_id", ""), (name, node["type"])  # GitHub owner/repo as a fallback


@pytest.mark.parametrize("name", sorted(wb.WORKFLOWS_BUILT))
def test_video_frame_rate_comes_from_the_driving_video(name, defs):
    api = convert_ui_to_api(json.loads((wb.WORKFLOWS / name).read_text()), defs)
    for video in (v for v in api.values() if v["class_type"] == "CreateVideo"):
        source, slot = video["inputs"]["fps"]  # a link, not a constant
        while api[source]["class_type"] != "GetVideoComponents":
            assert api[source]["class_type"] == "StableAnimatorFrameRate", api[source]
            source, slot = api[source]["inputs"]["fps"]
        assert slot == 2 and api[api[source]["inputs"]["video"][0]]["class_type"] == "LoadVideo"


def test_quick_preview_is_the_basic_workflow_smaller(defs):
    basic = convert_ui_to_api(json.loads((wb.WORKFLOWS / wb.BASIC).read_text()), defs)
    quick = convert_ui_to_api(json.loads((wb.WORKFLOWS / wb.QUICK_PREVIEW).read_text()), defs)
    assert {k: v["class_type"] for k, v in basic.items()} == {k: v["class_type"] for k, v in quick.items()}
    # the size is set on Frame Reference, whose width/height feed Conditioning
    cond = {name: next(v for v in api.values() if v["class_type"] == "StableAnimatorFrameReference")["inputs"]
            for name, api in (("basic", basic), ("quick", quick))}
    steps = {name: next(v for v in api.values() if v["class_type"] == "StableAnimatorSampler")["inputs"]["steps"]
             for name, api in (("basic", basic), ("quick", quick))}
    assert cond["quick"]["width"] * 2 == cond["basic"]["width"] and steps["quick"] < steps["basic"]
