"""The committed help pages (web/docs/<NodeId>.md) are exactly what tools/docs_builder.py builds from the node
classes, and every node of the pack has one (the front end asks /extensions/<pack>/docs/<NodeId>.md)."""

from __future__ import annotations

import re

from tools.docs_builder import DOCS, build_pages


def test_every_node_has_a_help_page(pack):
    pages = {p.stem for p in DOCS.glob("*.md")}
    missing = sorted(set(pack.NODE_CLASS_MAPPINGS) - pages)
    extra = sorted(pages - set(pack.NODE_CLASS_MAPPINGS))
    assert not missing, f"no help page for {missing}: run `python -m tools.docs_builder`"
    assert not extra, f"help pages for nodes that do not exist: {extra}: run `python -m tools.docs_builder`"


def test_committed_pages_match_the_node_classes():
    built = build_pages()
    stale = sorted(name for name, text in built.items()
                   if not (DOCS / name).is_file() or (DOCS / name).read_text(encoding="utf-8") != text)
    assert not stale, f"web/docs is out of date for {stale}: run `python -m tools.docs_builder`"


def test_pages_carry_description_inputs_and_outputs(pack):
    built = build_pages()
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        text = built[f"{node_id}.md"]
        assert cls.DESCRIPTION in text
        for section in cls.INPUT_TYPES().values():
            for name in section:
                assert re.search(rf"^\| `{re.escape(name)}`", text, re.MULTILINE), (node_id, name)
        for tooltip in getattr(cls, "OUTPUT_TOOLTIPS", ()):
            assert " ".join(tooltip.split()).replace("|", "\\|") in text, (node_id, tooltip)
