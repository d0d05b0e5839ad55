"""docs/config.md is what the config model says: regenerated here and compared."""

from __future__ import annotations

from pathlib import Path

from hashfed.federation.cli.configdoc import DESCRIPTIONS, _keys, render
from hashfed.federation.config import NodeConfig

DOC = Path(__file__).parents[2] / "docs" / "config.md"


def test_docs_config_md_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/config.md is stale: python -m hashfed.federation.cli.configdoc > docs/config.md"
    )


def test_every_key_is_described_and_no_description_is_stale() -> None:
    keys = {key for key, _field, _default in _keys(NodeConfig)}
    assert keys == set(DESCRIPTIONS)
