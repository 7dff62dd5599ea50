"""Small sizes and few steps, by node type, so that the tiny models run any bundled workflow in seconds on a CPU
(shared by the workflow runs over HTTP and the runs from the browser)."""

from __future__ import annotations

from typing import Any, Mapping

SMALL_INPUTS: dict[str, dict[str, Any]] = {
    # the generation size: Frame Reference's width/height feed DWPose and the conditioning nodes
    "StableAnimatorFrameReference": {"width": 64, "height": 128},
    "StableAnimatorSampler": {"steps": 2, "tile_size": 8, "tile_overlap": 2},
    "KSampler": {"steps": 2},
    "StableAnimatorKSamplerConditioning": {"tile_size": 8, "tile_overlap": 2},
    "StableAnimatorHJBSettings": {"iterations": 1, "end_step": 0},
}


def small_overrides(workflow: Mapping[str, Any], **extra: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """{node id: {input: value}} for every node of `workflow` with small settings; `extra` adds or replaces
    values per node type (e.g. StableAnimatorSampler={"steps": 20})."""
    overrides: dict[int, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        values = {**SMALL_INPUTS.get(node["type"], {}), **extra.get(node["type"], {})}
        if values:
            overrides[node["id"]] = values
    return overrides
