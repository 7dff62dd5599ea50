"""`python -m stableanimator_core --help` is written for users: what it does, how to get help per command, and
examples that parse."""

from __future__ import annotations

import shlex

from stableanimator_core.cli import EXAMPLES, build_parser


def test_help_is_for_users_and_its_examples_parse(capsys):
    parser = build_parser()
    text = parser.format_help()
    for developer_word in ("dispatcher", "add_arguments", "run(args)", "argparse", "module"):
        assert developer_word not in text, developer_word
    assert "COMMAND --help" in text and "examples:" in text
    commands = [line.strip() for line in EXAMPLES.replace("\\\n", " ").splitlines()
                if line.strip().startswith("python -m stableanimator_core")]
    assert {shlex.split(c)[3] for c in commands} == {"download", "animate", "pose"}
    for command in commands:
        parsed = parser.parse_args(shlex.split(command)[3:])
        assert parsed.command == shlex.split(command)[3]
