"""docs/architecture.md stays the true module map: every module of thugrq/ is on it, and
every file it names exists."""

from __future__ import annotations

import re

from tests.conftest import ROOT

ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
NAMED = set(re.findall(r"`((?:thugrq|tests|bin)/[\w/.-]+)`", ARCHITECTURE))


def test_every_module_of_thugrq_is_on_the_map():
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "thugrq").rglob("*.py")}
    assert sorted(modules - NAMED) == []


def test_every_file_on_the_map_exists():
    assert sorted(name for name in NAMED if not (ROOT / name).exists()) == []
