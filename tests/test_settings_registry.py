"""Every `GUARD_*` variable the code names is declared once, and the README's table is the registry's."""

from __future__ import annotations

import re
from pathlib import Path

from guard.settings import markdown_table, registry

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\bGUARD_[A-Z0-9_]*[A-Z0-9]\b")


def test_every_guard_variable_named_in_code_is_declared():
    declared = set(registry())
    named: dict[str, str] = {}
    for package in ("guard", "policies", "detectors", "generation"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for name in NAME.findall(line):
                    named.setdefault(name, f"{path.relative_to(ROOT)}:{number}")
    undeclared = {name: where for name, where in named.items() if name not in declared}
    assert undeclared == {}


def test_each_variable_is_read_through_its_declared_constant():
    """Outside the settings modules a `GUARD_*` name may appear in text, never as a bare string literal."""
    literal = re.compile(r"""["']GUARD_[A-Z0-9_]+["']""")
    found = []
    for package in ("guard", "policies", "detectors", "generation"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "settings.py":
                continue
            found += [f"{path.relative_to(ROOT)}: {m}" for m in literal.findall(path.read_text())]
    assert found == []


def test_every_declared_variable_has_a_meaning_and_a_default():
    for name, (default, meaning) in registry().items():
        assert name.startswith("GUARD_")
        assert default.strip() and meaning.strip(), name


def test_readme_configuration_table_is_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme
