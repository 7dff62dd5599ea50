"""Every node follows the pack's conventions: prefixed id, category, description, a tooltip on every socket."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def mappings(pack):
    return pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS


def test_ids_names_and_categories(mappings):
    classes, names = mappings
    assert len(classes) >= 10
    for node_id, cls in classes.items():
        assert node_id.startswith("StableAnimator"), node_id
        assert names[node_id].startswith("StableAnimator"), node_id
        assert cls.CATEGORY.split("/")[0] == "StableAnimator", node_id
        assert len(cls.DESCRIPTION) > 60, node_id
        assert callable(getattr(cls(), cls.FUNCTION)), node_id


def test_every_input_and_output_has_a_tooltip(mappings):
    classes, _ = mappings
    for node_id, cls in classes.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, definition in spec.get(section, {}).items():
                options = definition[1] if len(definition) > 1 else {}
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES), node_id
        assert all(cls.OUTPUT_TOOLTIPS), node_id


def test_custom_socket_types_are_prefixed(mappings):
    classes, _ = mappings
    core = {"IMAGE", "MASK", "LATENT", "FLOAT", "STRING", "INT", "BOOLEAN", "POSE_KEYPOINT", "MODEL", "CONDITIONING",
            "VAE", "CLIP_VISION"}
    for node_id, cls in classes.items():
        types = set(cls.RETURN_TYPES)
        for section in ("required", "optional"):
            types |= {d[0] for d in cls.INPUT_TYPES().get(section, {}).values() if isinstance(d[0], str)}
        assert all(t in core or t.startswith("STABLEANIMATOR_") for t in types), (node_id, types)


def test_nodes_import_without_comfyui(pack):
    assert pack.nodes.comfy_bridge.IN_COMFYUI is False
    assert pack.WEB_DIRECTORY == "./web"
