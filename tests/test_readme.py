"""The README's two opening commands stay true: the test command is what CI runs, the main job's arguments parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from stableanimator_core.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _opening_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_opens_with_two_commands():
    assert len(_opening_commands()) == 2


def test_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    test_cmd = _opening_commands()[1].strip()
    assert test_cmd in [line.strip() for line in ci]
    assert "pytest" in test_cmd


def test_main_job_command_is_valid():
    setup, make_tiny, animate = [part.strip() for part in _opening_commands()[0].split("&&")]
    assert setup == "bash scripts/setup.sh" and (REPO / "scripts" / "setup.sh").is_file()
    assert shlex.split(make_tiny)[1:4] == ["-m", "stableanimator_core.testing", "make-tiny-models"]
    args = shlex.split(animate)
    assert args[:3] == [".venv/bin/python", "-m", "stableanimator_core"]
    parsed = build_parser().parse_args(args[3:])
    assert parsed.command == "animate" and parsed.models == Path(shlex.split(make_tiny)[-1])
    assert (REPO / parsed.reference).is_file() and (REPO / parsed.driving).is_file()
    assert parsed.width % 64 == 0 and parsed.height % 64 == 0


def test_install_clones_the_repository_named_in_pyproject():
    import tomllib

    url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert f"git clone {url} ComfyUI-StableAnimator" in (REPO / "README.md").read_text()


def test_ci_requires_the_fixture_and_the_end_to_end_tests():
    """CI must fail, not skip, without ../shared/parity, ComfyUI or Chromium (a run of skips must never pass)."""
    ci = (REPO / ".ci" / "run").read_text()
    assert "export STABLEANIMATOR_REQUIRE_PARITY=1" in ci
    assert "STABLEANIMATOR_REQUIRE_E2E=1" in ci and "scripts/setup_comfyui.sh" in ci and "chromium" in ci
