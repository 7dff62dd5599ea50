"""The README's ComfyUI-fleet recipe patches inputs that exist: node types of the bundled workflow, input names
of the pack's nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _recipe() -> str:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return next(b for b in blocks if "Export (API)" in text and '"class_type"' in b)


def test_recipe_patches_existing_nodes_and_inputs(nodes):
    recipe = _recipe()
    workflow_types = {n["type"] for n in json.loads((REPO / "example_workflows" / "StableAnimator 1 - basic animation.json").read_text())["nodes"]}
    patched = re.findall(r'inputs\(g, "(\w+)"\)(?:\["(\w+)"\]|\.update\(([^)]*)\))', recipe)
    assert len(patched) == 5
    for class_type, key, update in patched:
        assert class_type in workflow_types, class_type
        names = [key] if key else re.findall(r"(\w+)=", update)
        if class_type in nodes:  # the pack's nodes: the names must be their inputs
            declared = nodes[class_type].INPUT_TYPES()
            known = {**declared.get("required", {}), **declared.get("optional", {})}
            assert set(names) <= set(known), (class_type, names)
