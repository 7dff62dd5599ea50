"""The static workflow checker and the UI -> API converter, against core node definitions captured from a real
ComfyUI (tools/data/core_object_info.json); no ComfyUI needed."""
from __future__ import annotations


import pytest

from tools.workflow_builder import DATA
from tools.workflow_tools import (
    UIGraph, WorkflowConversionError, check_workflow, convert_ui_to_api, expected_widget_count, load_object_info,
    map_widget_values, object_info_from_classes, types_compatible,
)

CORE = load_object_info(DATA / "core_object_info.json")


class ProbeSampler:
    """A V1 node like the pack's: a seed with control_after_generate, an optional widget, a custom type."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**64 - 1,
                                              "control_after_generate": True}),
                             "steps": ("INT", {"default": 25, "min": 1, "max": 200}),
                             "cfg": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 20.0, "step": 0.1}),
                             "mode": (["fast", "quality"],)},
                "optional": {"pipe": ("PROBE_PIPE",), "tile": ("BOOLEAN", {"default": False})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("IMAGE", "PROBE_PIPE")
    RETURN_NAMES = ("frames", "pipe")
    FUNCTION = "run"
    CATEGORY = "probe"


DEFS = {**CORE, **object_info_from_classes({"ProbeSampler": ProbeSampler}, {"ProbeSampler": "Probe Sampler"},
                                           python_module="custom_nodes.probe")}


def video_graph() -> tuple[UIGraph, dict[str, int]]:
    """LoadImage -> ImageScale -> (Reroute) -> RepeatImageBatch -> CreateVideo -> SaveVideo, plus a Note."""
    g = UIGraph(DEFS)
    ids = {"load": g.node("LoadImage", ["person.png", "image"]),
           "scale": g.node("ImageScale", ["bilinear", 64, 48, "disabled"]),
           "reroute": g.node("Reroute", None),
           "repeat": g.node("RepeatImageBatch", [4]),
           "video": g.node("CreateVideo", [8.0]),
           "save": g.node("SaveVideo", ["video/e2e", "mp4", "h264"]),
           "note": g.node("Note", ["just a note"])}
    g.link(ids["load"], 0, ids["scale"], "image")
    g.link(ids["scale"], 0, ids["reroute"], "")
    g.link(ids["reroute"], 0, ids["repeat"], "image")
    g.link(ids["repeat"], 0, ids["video"], "images")
    g.link(ids["video"], 0, ids["save"], "video")
    return g, ids


def kinds(issues) -> list[str]:
    return sorted(i.kind for i in issues)


# ------------------------------------------------------------------------------------------------ core data

def test_core_object_info_holds_the_core_nodes_and_no_virtual_ones():
    for name in ("LoadImage", "LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo", "SaveAnimatedWEBP",
                 "PreviewImage", "SaveImage", "ImageScale", "UpscaleModelLoader", "ImageUpscaleWithModel",
                 "ImageFromBatch", "RepeatImageBatch"):
        assert CORE[name]["name"] == name
    assert not {"_source", "Note", "MarkdownNote", "PrimitiveNode"} & set(CORE)


def test_widget_counts_follow_the_frontend_rules():
    assert expected_widget_count(CORE["LoadImage"]) == 2  # image + upload widget
    assert expected_widget_count(CORE["LoadVideo"]) == 2
    assert expected_widget_count(CORE["SaveVideo"]) == 3
    assert expected_widget_count(DEFS["ProbeSampler"]) == 6  # seed + its control value, steps, cfg, mode, tile


# ------------------------------------------------------------------------------------------------ checker

def test_valid_workflow_has_no_issues():
    g, _ = video_graph()
    assert check_workflow(g.to_json(), DEFS) == []


def test_unknown_node_type_is_reported():
    g, _ = video_graph()
    g.node("StableAnimatorNoSuchNode", [1, 2])
    issues = check_workflow(g.to_json(), DEFS)
    assert kinds(issues) == ["unknown_node_type"]
    assert "StableAnimatorNoSuchNode" in str(issues[0])


def test_bad_combo_value_is_reported():
    g, ids = video_graph()
    g.nodes[ids["scale"] - 1]["widgets_values"][0] = "cubic"
    issues = check_workflow(g.to_json(), DEFS)
    assert kinds(issues) == ["combo_value"]
    assert "'cubic' not in" in issues[0].message


def test_out_of_range_int_is_reported():
    g, ids = video_graph()
    g.nodes[ids["repeat"] - 1]["widgets_values"] = [0]  # amount min is 1
    g.nodes[ids["scale"] - 1]["widgets_values"][1] = 20000  # width max is 16384
    issues = check_workflow(g.to_json(), DEFS)
    assert kinds(issues) == ["out_of_range", "out_of_range"]
    assert {i.node_id for i in issues} == {ids["repeat"], ids["scale"]}


def test_wrong_value_types_are_reported():
    g, ids = video_graph()
    g.nodes[ids["scale"] - 1]["widgets_values"][2] = "48"
    g.nodes[ids["video"] - 1]["widgets_values"] = [True]
    assert kinds(check_workflow(g.to_json(), DEFS)) == ["bad_value_type", "bad_value_type"]


def test_incompatible_link_is_reported_also_through_a_reroute():
    g, ids = video_graph()
    wf = g.to_json()
    # Feed ImageScale's IMAGE input from LoadImage's MASK output (slot 1).
    wf["links"][0][2] = 1
    issues = check_workflow(wf, DEFS)
    assert kinds(issues) == ["link_type_mismatch"]
    assert "MASK" in issues[0].message and issues[0].node_id == ids["scale"]

    g, ids = video_graph()
    wf = g.to_json()
    wf["links"][1][2] = 0
    wf["nodes"][ids["scale"] - 1]["type"] = "UpscaleModelLoader"  # now the reroute carries an UPSCALE_MODEL
    wf["nodes"][ids["scale"] - 1]["widgets_values"] = ["x4.pth"]
    issues = check_workflow(wf, DEFS, env_combos=[("UpscaleModelLoader", "model_name")])
    assert "link_type_mismatch" in kinds(issues)
    assert any("UPSCALE_MODEL" in i.message and i.node_id == ids["repeat"] for i in issues)


def test_wrong_widget_count_is_reported():
    g, ids = video_graph()
    g.nodes[ids["save"] - 1]["widgets_values"] = ["video/e2e", "mp4"]
    issues = check_workflow(g.to_json(), DEFS)
    assert kinds(issues) == ["widget_count"]
    assert "expected 3" in issues[0].message


def test_model_file_combos_are_allowed_only_when_declared():
    g = UIGraph(DEFS)
    loader, image = g.node("UpscaleModelLoader", ["4x_foo.pth"]), g.node("LoadImage", ["in.png", "image"])
    up, save = g.node("ImageUpscaleWithModel"), g.node("SaveImage", ["out"])
    g.link(loader, 0, up, "upscale_model")
    g.link(image, 0, up, "image")
    g.link(up, 0, save, "images")
    assert kinds(check_workflow(g.to_json(), DEFS)) == ["combo_value"]
    assert check_workflow(g.to_json(), DEFS, env_combos=[("UpscaleModelLoader", "model_name")]) == []
    assert check_workflow(g.to_json(), DEFS, env_combos=lambda node_type, name: name == "model_name") == []
    assert check_workflow(g.to_json(), DEFS, env_combos=[("*", "model_name")]) == []


def test_missing_required_input_and_dangling_link_are_reported():
    g, ids = video_graph()
    wf = g.to_json()
    wf["nodes"][ids["save"] - 1]["inputs"][0]["link"] = None
    assert kinds(check_workflow(wf, DEFS)) == ["missing_input"]
    wf["nodes"][ids["save"] - 1]["mode"] = 4  # a bypassed node needs nothing
    assert check_workflow(wf, DEFS) == []
    wf = g.to_json()
    wf["links"] = [link for link in wf["links"] if link[0] != 5]
    assert kinds(check_workflow(wf, DEFS)) == ["bad_link"]


def test_custom_node_seed_control_value_and_custom_types():
    g, ids = video_graph()
    sampler = g.node("ProbeSampler", [7, "randomize", 25, 3.5, "fast", False])
    g.link(ids["repeat"], 0, sampler, "images")
    assert check_workflow(g.to_json(), DEFS) == []
    g.nodes[sampler - 1]["widgets_values"] = [7, 25, 3.5, "fast", False]  # control value missing
    assert kinds(check_workflow(g.to_json(), DEFS)) == ["widget_count"]


def test_types_compatible():
    assert types_compatible("IMAGE", "IMAGE")
    assert types_compatible("IMAGE", "*") and types_compatible("*", "LATENT")
    assert types_compatible("IMAGE", "MASK,IMAGE") and types_compatible("STRING,INT", "INT,FLOAT")
    assert not types_compatible("MASK", "IMAGE")
    assert not types_compatible("image", "IMAGE")  # the server compares case-sensitively


# ------------------------------------------------------------------------------------------------ V1 -> object_info

def test_v1_class_info_matches_what_the_server_reports():
    class ImageScale:  # the V1 class as in ComfyUI's nodes.py
        upscale_methods = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
        crop_methods = ["disabled", "center"]

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",), "upscale_method": (cls.upscale_methods,),
                                 "width": ("INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
                                 "height": ("INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
                                  "crop": (cls.crop_methods,)}}
        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "upscale"
        CATEGORY = "image/upscaling"

    info = object_info_from_classes({"ImageScale": ImageScale}, {"ImageScale": "Upscale Image"},
                                    python_module="nodes")["ImageScale"]
    assert info == CORE["ImageScale"]


def test_v1_class_info_fields():
    info = DEFS["ProbeSampler"]
    assert info["output"] == ["IMAGE", "PROBE_PIPE"] and info["output_name"] == ["frames", "pipe"]
    assert info["input_order"] == {"required": ["images", "seed", "steps", "cfg", "mode"],
                                   "optional": ["pipe", "tile"], "hidden": ["unique_id"]}
    assert info["python_module"] == "custom_nodes.probe" and info["display_name"] == "Probe Sampler"
    assert info["output_node"] is False and info["category"] == "probe"


# ------------------------------------------------------------------------------------------------ UI -> API

def test_convert_maps_widgets_links_and_skips_virtual_nodes():
    g, ids = video_graph()
    api = convert_ui_to_api(g.to_json(), DEFS)
    assert sorted(api, key=int) == [str(ids[k]) for k in ("load", "scale", "repeat", "video", "save")]
    assert api[str(ids["load"])]["inputs"] == {"image": "person.png"}  # upload widget value dropped
    assert api[str(ids["scale"])]["inputs"] == {"image": [str(ids["load"]), 0], "upscale_method": "bilinear",
                                                "width": 64, "height": 48, "crop": "disabled"}
    assert api[str(ids["repeat"])]["inputs"] == {"image": [str(ids["scale"]), 0], "amount": 4}  # via the reroute
    assert api[str(ids["save"])] == {"class_type": "SaveVideo", "_meta": {"title": "Save Video"},
                                     "inputs": {"video": [str(ids["video"]), 0], "filename_prefix": "video/e2e",
                                                "format": "mp4", "codec": "h264"}}


def test_convert_seed_control_value_list_values_and_linked_widgets():
    g, ids = video_graph()
    sampler = g.node("ProbeSampler", [7, "randomize", 25, 3.5, "fast", True], title="My sampler")
    g.link(ids["repeat"], 0, sampler, "images")
    g.link(ids["repeat"], 0, sampler, "steps")  # a widget turned into a linked input
    api = convert_ui_to_api(g.to_json(), DEFS)[str(sampler)]
    assert api["inputs"] == {"images": [str(ids["repeat"]), 0], "seed": 7, "steps": [str(ids["repeat"]), 0],
                             "cfg": 3.5, "mode": "fast", "tile": True}
    assert api["_meta"]["title"] == "My sampler"
    # Files saved by older frontends lack the control value; the mapping still lines up.
    g.nodes[sampler - 1]["widgets_values"] = [7, 25, 3.5, "fast", True]
    assert map_widget_values(g.nodes[sampler - 1], DEFS["ProbeSampler"])["steps"] == 25
    g.nodes[sampler - 1]["widgets_values"] = [[1, 2], "fixed", 25, 3.5, "fast", True]
    assert convert_ui_to_api(g.to_json(), DEFS)[str(sampler)]["inputs"]["seed"] == {"__value__": [1, 2]}


def test_convert_bypassed_node_is_wired_through_and_muted_node_dropped():
    g, ids = video_graph()
    wf = g.to_json()
    wf["nodes"][ids["repeat"] - 1]["mode"] = 4
    api = convert_ui_to_api(wf, DEFS)
    assert str(ids["repeat"]) not in api
    assert api[str(ids["video"])]["inputs"]["images"] == [str(ids["scale"]), 0]

    wf["nodes"][ids["repeat"] - 1]["mode"] = 2
    api = convert_ui_to_api(wf, DEFS)
    assert str(ids["repeat"]) not in api and "images" not in api[str(ids["video"])]["inputs"]


def test_convert_primitive_node_feeds_the_synced_widget_value():
    g, ids = video_graph()
    prim = g.node("PrimitiveNode", [5], outputs=[{"name": "INT", "type": "INT", "widget": {"name": "amount"},
                                                  "links": []}])
    g.link(prim, 0, ids["repeat"], "amount")
    g.nodes[ids["repeat"] - 1]["widgets_values"] = [5]  # the frontend keeps the target widget in sync
    api = convert_ui_to_api(g.to_json(), DEFS)
    assert api[str(ids["repeat"])]["inputs"]["amount"] == 5 and str(prim) not in api


def test_convert_rejects_unknown_types():
    g, _ = video_graph()
    g.node("NoSuchNode")
    with pytest.raises(WorkflowConversionError, match="NoSuchNode"):
        convert_ui_to_api(g.to_json(), DEFS)
