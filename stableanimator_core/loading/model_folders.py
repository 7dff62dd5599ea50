"""Model names -> paths, confined to the registered models folders.

A model name comes from a combo widget, but a workflow can also link any string into it (a common any-type
idiom), so a name is untrusted: ``../../etc/passwd`` or ``/abs/path`` must neither be loaded nor probed.
Confinement is lexical (``root/name`` normalised must stay under ``root``): symlinks a user placed inside a
models folder keep working, as they do in ComfyUI, while a name can never climb out of it. Errors name the
folders searched, never whether the requested path exists elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from ..errors import CheckpointError


def confined_path(root: str | os.PathLike, name: str) -> Optional[Path]:
    """``root/name`` when ``name`` is a relative path that stays inside ``root``; None otherwise.

    Nothing is read from the disk, so a rejected name reveals nothing about the file system.
    """
    if not isinstance(name, str) or "\x00" in name:
        return None
    rel = name.replace("\\", "/")
    if rel.startswith("/") or os.path.isabs(rel) or (len(rel) > 1 and rel[1] == ":"):
        return None
    base = os.path.normpath(os.path.abspath(os.fspath(root)))
    full = os.path.normpath(os.path.join(base, rel))
    if os.path.commonpath([base, full]) != base:
        return None
    return Path(full)


def is_confined(roots: Iterable[str | os.PathLike], name: str) -> bool:
    return any(confined_path(root, name) is not None for root in roots)


def find_in_folders(roots: Sequence[str | os.PathLike], name: str,
                    accept: Callable[[Path], bool] = Path.is_file) -> Optional[Path]:
    """The first ``root/name`` (confined) that ``accept`` takes, or None. Raises when ``name`` escapes every root."""
    candidates = [p for p in (confined_path(r, name) for r in roots) if p is not None]
    if not candidates:
        raise CheckpointError(outside_message(roots, name))
    return next((p for p in candidates if accept(p)), None)


def outside_message(roots: Sequence[str | os.PathLike], name: str) -> str:
    folders = ", ".join(str(r) for r in roots) or "(none registered)"
    return (f"'{name}' is not a model name: model names are paths relative to the models folders ({folders}), "
            f"without '..' or a drive/absolute path. Put the file in one of those folders and choose it from the "
            f"node's list.")
