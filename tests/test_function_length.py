"""No function in the runtime (``sdk/``), export (``export/``), training (``train/``), the scripts or the benchmarks
(``benchmarks/``) is over 60 lines.

A long function mixes stages; a reader carries it on more easily as named steps that can be
read and tested alone (issue 24, "stages, not sagas"). A function's length runs from its
``def`` line to its last line, docstring, comments and blank lines included, decorators not;
a nested function counts in its own length and in the one around it.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

LIMIT = 60
TREES = ("sdk", "export", "benchmarks", "train", "scripts")

ALLOWED: set[str] = set()
"""Functions over the limit for now, as ``path::name`` (none today); an entry must be a long
function, and goes when it is split."""


def long_functions(source: str, path: str, limit: int = LIMIT) -> dict[str, int]:
    """``path::name`` -> length of every function in ``source`` over ``limit`` lines."""
    found = {}
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found[f"{path}::{node.name}"] = length
    return found


def tree_files() -> list[Path]:
    """Every module under the :data:`TREES`."""
    return [path for tree in TREES for path in sorted((ROOT / tree).rglob("*.py"))]


def tree_long_functions() -> dict[str, int]:
    """Every function over the limit under the :data:`TREES`."""
    found: dict[str, int] = {}
    for path in tree_files():
        found.update(long_functions(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()))
    return found


def test_the_counter_flags_a_function_one_line_over_the_limit():
    def source(lines: int) -> str:  # a function of exactly `lines` lines, nested in a class
        return "class C:\n    def f(self):\n" + "        x = 1\n" * (lines - 2) + "        return x\n"

    assert long_functions(source(LIMIT), "m.py") == {}
    assert long_functions(source(LIMIT + 1), "m.py") == {"m.py::f": LIMIT + 1}


def test_no_function_over_60_lines():
    files = tree_files()
    wanted = {ROOT / "sdk" / "cli.py", ROOT / "benchmarks" / "latency.py"}
    assert len(files) > 20 and wanted <= set(files), f"the scan reads {len(files)} modules only"
    found = tree_long_functions()
    over = {name: n for name, n in found.items() if name not in ALLOWED}
    assert not over, (f"functions over {LIMIT} lines: "
                      + "; ".join(f"{name} ({n} lines)" for name, n in sorted(over.items()))
                      + " - split each into named stages of at most ~40 lines")


def stale_entries(allowed: set[str], found: dict[str, int]) -> list[str]:
    """Entries of ``allowed`` that are no longer over the limit (or gone)."""
    return sorted(allowed - set(found))


def test_the_allow_list_holds_only_long_functions():
    assert stale_entries({"m.py::f", "m.py::g"}, {"m.py::f": LIMIT + 1}) == ["m.py::g"]
    stale = stale_entries(ALLOWED, tree_long_functions())
    assert not stale, f"{', '.join(stale)}: now at most {LIMIT} lines (or gone); remove it from ALLOWED"
