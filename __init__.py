"""StableAnimator for ComfyUI: ComfyUI entry point.

Registers the model folders (``models/stableanimator``, ``models/insightface``), offers the bundled example
inputs in ComfyUI's input folder (copied only when absent, never overwritten) and exposes the nodes.
No network access and no package installation happen here.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes import comfy_bridge as _bridge

WEB_DIRECTORY = "./web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

_log = logging.getLogger("StableAnimator")


def _offer_example_inputs() -> None:
    """Copy ``example_workflows/inputs/*`` into ComfyUI's input folder when missing, so the bundled workflows run as loaded."""
    if not _bridge.IN_COMFYUI:
        return
    source = Path(__file__).parent / "example_workflows" / "inputs"
    target = _bridge.input_directory()
    for item in sorted(source.glob("*")) if source.is_dir() else []:
        dest = target / item.name
        if item.is_file() and not os.path.lexists(dest):
            try:
                target.mkdir(parents=True, exist_ok=True)
                _copy_new_file(item, dest)
            except OSError as exc:  # a read-only input folder must not break loading the pack
                _log.warning("could not copy example input %s: %s", item.name, exc)


def _copy_new_file(src: Path, dest: Path) -> None:
    """Create ``dest`` and copy into it; O_EXCL refuses any existing entry, a dangling symlink included, so the
    copy can never be written through a link to somewhere outside the input folder."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out)


_bridge.register_model_folders()
_offer_example_inputs()
