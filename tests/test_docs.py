"""Docs that promise API details stay true to the code."""

import dataclasses
import doctest
from pathlib import Path

import sona_web.engine
from sona_web.config import PRESETS, SonaConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_doc_lists_every_field_with_its_help():
    text = (DOCS / "configuration.md").read_text()
    for item in dataclasses.fields(SonaConfig):
        assert f"| `{item.name}` |" in text, item.name
        assert item.metadata["help"] in text, item.name


def test_configuration_doc_lists_every_preset():
    text = (DOCS / "configuration.md").read_text()
    for name in PRESETS:
        assert f"| `{name}` |" in text


def test_engine_docstring_examples_run():
    result = doctest.testmod(sona_web.engine)
    assert result.attempted > 0
    assert result.failed == 0
