"""Text a node shows on itself after it ran (web/js/stableanimator.js draws it; warnings are highlighted)."""

from __future__ import annotations

from typing import Any

TEXT_KEY = "stableanimator_text"


def text_ui(*lines: tuple[str, bool]) -> dict[str, list[dict[str, Any]]]:
    """The ``ui`` entry for ``(text, is_warning)`` lines."""
    return {TEXT_KEY: [{"text": text, "level": "warning" if warning else "info"} for text, warning in lines]}
