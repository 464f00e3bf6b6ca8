"""The shape of the package, read from its source with `ast`: a library that never imports
click, no import cycle, and modules small enough to read.

A module may grow past `MAX_LINES` only when its docstring says why, with the phrase
`LONG_MODULE_MARKER` followed by the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "thugrq"
MAX_LINES = 350
LONG_MODULE_MARKER = "Longer than 350 lines because"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """Every module that `name` imports, at module level or inside functions; `from X import
    Y` counts as importing X.Y when that is a module of the package, else X."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


def graph() -> dict[str, set[str]]:
    """The package's import graph: each module and the package modules it imports."""
    return {name: imported(name, path) & MODULES.keys() for name, path in MODULES.items()}


def test_only_the_cli_imports_click():
    offenders = {
        name: sorted(m for m in imported(name, path) if m.split(".")[0] == "click")
        for name, path in MODULES.items()
        if not (name == "thugrq.cli" or name.startswith("thugrq.cli."))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_import_graph_has_no_cycle():
    edges = graph()
    # A module imports its package's __init__ first: only an explicit import is an edge here.
    state: dict[str, str] = {}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_cycle_check_sees_a_lazy_import(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def later():\n    from thugrq import stack\n")
    assert "thugrq.stack" in imported("thugrq.lazy", module)


def test_modules_are_short_or_say_why():
    long = {}
    for name, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and LONG_MODULE_MARKER not in docstring:
            long[name] = lines
    assert long == {}
