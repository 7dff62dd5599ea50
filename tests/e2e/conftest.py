"""Fixtures for end-to-end tests against a real ComfyUI (one server per test session).

Environment:
  COMFYUI_DIR          a ComfyUI checkout; unset -> every e2e test is skipped
  COMFYUI_PYTHON       interpreter of ComfyUI's venv (default: the one running pytest); see scripts/setup_comfyui.sh
  COMFYUI_MODELS_DIR   optional models folder (the server's models/ links to it; default: an empty folder)
  COMFYUI_E2E_KEEP=1   keep the server's base directory (log, outputs) after the session
  STABLEANIMATOR_REQUIRE_E2E=1   fail instead of skipping when ComfyUI or Chromium is missing (what .ci/run sets)
  STABLEANIMATOR_E2E_ARTIFACTS   folder for screenshots, videos and the servers' logs
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from tests.e2e.comfy_server import ComfyServer, ComfyServerError, PackImportError

REPO_ROOT = Path(__file__).resolve().parents[2]
# The folder name the pack gets in custom_nodes/ (what users clone it as); /object_info reports its nodes with
# python_module "custom_nodes.<PACK_NAME>".
PACK_NAME = "ComfyUI-StableAnimator"
SKIP_REASON = ("COMFYUI_DIR is not set: end-to-end tests need a ComfyUI checkout "
               "(set COMFYUI_DIR and COMFYUI_PYTHON; see scripts/setup_comfyui.sh)")
SHARED_TARBALLS = sorted((REPO_ROOT.parent / "shared" / "comfyui").glob("ComfyUI-*.tar.gz"))


def e2e_required() -> bool:
    return os.environ.get("STABLEANIMATOR_REQUIRE_E2E", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`, or fail when STABLEANIMATOR_REQUIRE_E2E is set (CI must never pass on skips)."""
    if e2e_required():
        pytest.fail(f"{reason} (STABLEANIMATOR_REQUIRE_E2E is set, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def keep_server_log(server: ComfyServer, name: str) -> None:
    target = os.environ.get("STABLEANIMATOR_E2E_ARTIFACTS")
    if target and server.base_dir is not None and server.log_path.is_file():
        dest = Path(target) / "logs"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, dest / f"{name}.log")

_skipped_for_env: list[str] = []


@pytest.fixture(scope="session")
def comfy_env() -> dict[str, Any]:
    """ComfyServer keyword arguments from the COMFYUI_* variables; skips (naming COMFYUI_DIR) when unset.
    For tests that start a server of their own: ComfyServer(**comfy_env, packs=...)."""
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        skip_or_fail(SKIP_REASON)
    return {"comfyui_dir": comfyui_dir,
            "python": os.environ.get("COMFYUI_PYTHON") or None,
            "keep_base_dir": os.environ.get("COMFYUI_E2E_KEEP") == "1"}


@pytest.fixture(scope="session")
def comfy_core_server(comfy_env: dict[str, Any]) -> Iterator[ComfyServer]:
    """The session's ComfyUI with this pack in custom_nodes/, whether or not the pack imported
    (for tests of core nodes and of the harness itself)."""
    server = ComfyServer(**comfy_env, packs={PACK_NAME: REPO_ROOT},
                         models_dir=os.environ.get("COMFYUI_MODELS_DIR") or None)
    try:
        server.start()
    except ComfyServerError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        keep_server_log(server, "comfyui_core_server")
        server.stop()


@pytest.fixture(scope="session")
def comfy_server(comfy_core_server: ComfyServer) -> ComfyServer:
    """The session's ComfyUI, after checking that this pack registered its nodes (else: fail with the traceback)."""
    try:
        comfy_core_server.require_pack(PACK_NAME)
    except PackImportError as e:
        pytest.fail(str(e), pytrace=False)
    return comfy_core_server


@contextlib.contextmanager
def pack_server_running(comfy_env: dict[str, Any], log_name: str, models_dir: Path,
                        extra_packs: Optional[dict[str, Path]] = None, **server_args: Any) -> Iterator[ComfyServer]:
    """A ComfyUI with this pack (and `extra_packs`) for the block; fails with the import traceback if the pack
    registered no nodes; keeps its log under `log_name` (STABLEANIMATOR_E2E_ARTIFACTS)."""
    server = ComfyServer(**comfy_env, packs={PACK_NAME: REPO_ROOT, **(extra_packs or {})}, models_dir=models_dir,
                         **server_args)
    try:
        server.start()
        server.require_pack(PACK_NAME)
    except ComfyServerError as e:
        server.stop()
        pytest.fail(str(e), pytrace=False)
    # A user who has "completed the tutorial" is not greeted with the templates dialog over the canvas.
    server.post_json("/settings", {"Comfy.TutorialCompleted": True})
    try:
        yield server
    finally:
        keep_server_log(server, log_name)
        server.stop()


@pytest.fixture(scope="session")
def pack_server(comfy_env: dict[str, Any], tiny_models_dir: Path) -> Iterator[ComfyServer]:
    """A ComfyUI with this pack and the tiny models folder (tests/conftest.py), shared by the workflow and browser
    tests."""
    with pack_server_running(comfy_env, "comfyui_pack_server", tiny_models_dir) as server:
        yield server


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Remember skips caused by a missing COMFYUI_DIR, to say so once at the end (pytest -q hides skip reasons).
    if report.skipped and SKIP_REASON in str(report.longrepr):
        _skipped_for_env.append(report.nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped_for_env:
        hint = (f" For example: tar -xzf {SHARED_TARBALLS[-1]} -C /tmp && bash scripts/setup_comfyui.sh "
                f"/tmp/ComfyUI /tmp/comfy-venv, then COMFYUI_DIR=/tmp/ComfyUI COMFYUI_PYTHON=/tmp/comfy-venv/bin/python"
                if SHARED_TARBALLS else "")
        terminalreporter.write_line(f"e2e: {len(_skipped_for_env)} test(s) SKIPPED, nothing ran in ComfyUI: "
                                    f"{SKIP_REASON}.{hint}", yellow=True, bold=True)
