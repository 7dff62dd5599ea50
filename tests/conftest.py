"""Shared test fixtures: the parity fixture folder and the pack imported the way ComfyUI imports it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# OpenMP threads that spin while waiting stall badly when other processes share the cores; passive waiting costs
# nothing on an idle machine (must be set before torch starts its thread pool).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]


def parity_dir() -> Path:
    """``../shared/parity`` beside the repository, or ``STABLEANIMATOR_PARITY_DIR``."""
    return Path(os.environ.get("STABLEANIMATOR_PARITY_DIR", REPO.parent / "shared" / "parity")).resolve()


@pytest.fixture(scope="session")
def parity() -> Path:
    """The golden parity fixture folder: the one way tests reach it (they fail, never skip, without it)."""
    path = parity_dir()
    if not (path / "weights" / "configs.json").is_file():
        pytest.fail(f"parity fixture not found at {path} (set STABLEANIMATOR_PARITY_DIR)")
    return path


@pytest.fixture(scope="session")
def pack():
    """The repository imported as a package under a mangled name, as ComfyUI's loader does."""
    name = "custom_nodes_x_stableanimator_pack"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_models(parity):
    """The parity fixture's tiny models, loaded by the pack's own loaders (float32, CPU)."""
    from stableanimator_core.parity.fixture import load_models

    return load_models(parity)


@pytest.fixture(scope="session")
def fixture_inputs(parity):
    from stableanimator_core.parity.fixture import load_inputs

    return load_inputs(parity)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory):
    """A complete models folder of tiny random models (official layout), written once per session."""
    from stableanimator_core.testing.tiny_models import make_tiny_models

    root = tmp_path_factory.mktemp("models")
    make_tiny_models(root)
    return root


@pytest.fixture
def standalone_models(tiny_models_dir, monkeypatch):
    """Point the pack's standalone model lookup (no ComfyUI) at the tiny models folder."""
    monkeypatch.setenv("STABLEANIMATOR_MODELS_DIR", str(tiny_models_dir))
    return tiny_models_dir


@pytest.fixture
def nodes(pack, standalone_models):
    """The pack's node classes by id, with the tiny models folder as the models folder."""
    return pack.nodes.NODE_CLASS_MAPPINGS


@pytest.fixture
def handles(pack):
    return pack.nodes.handles


@pytest.fixture
def bridge(pack):
    return pack.nodes.comfy_bridge


@pytest.fixture
def errors(pack):
    """The pack's error classes (what node code raises; distinct from ``stableanimator_core.errors``' own)."""
    return pack.stableanimator_core.errors
