"""ComfyUI node classes of the pack (classic node API); thin adapters over ``stableanimator_core``."""

from __future__ import annotations

from . import generation_nodes, model_nodes, native_nodes, preprocess_nodes, readout_nodes

_MODULES = (model_nodes, preprocess_nodes, generation_nodes, native_nodes, readout_nodes)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
