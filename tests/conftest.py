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


REQUIRE_PARITY_ENV = "STABLEANIMATOR_REQUIRE_PARITY"


def parity_dir() -> Path:
    """``../shared/parity`` beside the repository, or ``STABLEANIMATOR_PARITY_DIR``."""
    return Path(os.environ.get("STABLEANIMATOR_PARITY_DIR", REPO.parent / "shared" / "parity")).resolve()


def parity_available() -> bool:
    return (parity_dir() / "weights" / "configs.json").is_file()


def parity_missing_reason() -> str:
    return (f"parity fixture not found at {parity_dir()} (put the golden fixture at ../shared/parity beside the "
            f"repository or set STABLEANIMATOR_PARITY_DIR)")


_skipped_for_parity: list[str] = []


def _needs_parity(item: pytest.Item) -> bool:
    # fixturenames is the closure: tests that get the fixture through tiny_models, fixture_inputs, ... count too
    return "parity" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Without the fixture, its tests skip with the reason (a clone outside CI); CI sets the REQUIRE variable and
    # stops here instead, so a missing fixture can never pass as a run with skips.
    if parity_available():
        return
    needing = [item for item in items if _needs_parity(item)]
    if not needing:
        return
    if os.environ.get(REQUIRE_PARITY_ENV, "") not in ("", "0"):
        raise pytest.UsageError(f"{parity_missing_reason()}; {REQUIRE_PARITY_ENV} is set, so the "
                                f"{len(needing)} tests that need it cannot be skipped")
    marker = pytest.mark.skip(reason=parity_missing_reason())
    for item in needing:
        item.add_marker(marker)
        _skipped_for_parity.append(item.nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for_parity:
        terminalreporter.write_line(f"{len(_skipped_for_parity)} test(s) skipped: {parity_missing_reason()}",
                                    yellow=True, bold=True)


@pytest.fixture(scope="session")
def parity() -> Path:
    """The golden parity fixture folder: the one way tests reach it. Without it they are skipped with the reason
    at collection (or the session stops, with STABLEANIMATOR_REQUIRE_PARITY=1 as in CI)."""
    path = parity_dir()
    if not parity_available():  # only reached when collection did not mark the test
        pytest.fail(parity_missing_reason())
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
def payloads(pack):
    return pack.nodes.payloads


@pytest.fixture
def bridge(pack):
    return pack.nodes.comfy_bridge


@pytest.fixture
def errors(pack):
    """The pack's error classes (what node code raises; distinct from ``stableanimator_core.errors``' own)."""
    return pack.stableanimator_core.errors
