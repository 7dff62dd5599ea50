"""Where the tests find the golden parity fixture (shared by conftest.py and test modules)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parity_dir() -> Path:
    """``../shared/parity`` beside the repository, or ``STABLEANIMATOR_PARITY_DIR``."""
    return Path(os.environ.get("STABLEANIMATOR_PARITY_DIR", REPO.parent / "shared" / "parity")).resolve()
