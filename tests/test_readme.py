"""The README's configuration table lists every PUSHCORE_* setting, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from pushcore.config import declared

README = Path(__file__).resolve().parent.parent / "README.md"


def test_configuration_table_matches_settings() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `(PUSHCORE_[A-Z0-9_]+)` \|", text, re.MULTILINE))
    assert documented == {name for name, _, _ in declared()}
