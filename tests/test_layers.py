"""The packages import one way: runtime <- networks and training <- export <- benchmarks.

``sdk/`` (the runtime) imports nothing of ours above it; ``train/`` (``sdk.train``: the
networks, their deploy tools and the trainer) imports the runtime only; ``export/``
(``sdk.export``) imports both; ``benchmarks/`` (``sdk.benchmarks``) anything. Every import
counts, the lazy ones inside functions too (a lazy import still ties the layers). The torch
runner, which rebuilds networks, reaches the runtime through an entry point, not an import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = {"sdk": 0, "train": 1, "export": 2, "benchmarks": 3}
NAMES = {0: "runtime (sdk/)", 1: "networks and training (train/)", 2: "export (export/)", 3: "benchmarks"}


def layer_of_module(module: str) -> int | None:
    """Layer of an absolute module name, None for third-party modules."""
    parts = module.split(".")
    if parts[0] != "sdk":
        return None
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, relative ones resolved."""
    rel = path.relative_to(root)
    package = ["sdk", *rel.parts[:-1]] if rel.parts[0] != "sdk" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out += [(node.lineno, f"{module}.{a.name}" if layer_of_module(module) is not None else module)
                    for a in node.names]
    return out


SOURCES = sorted(p for top in LAYERS for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_imports_go_down_the_layers(path):
    own = LAYERS[path.relative_to(ROOT).parts[0]]
    against = [f"line {line}: {module} ({NAMES[layer_of_module(module)]})" for line, module in imports(path)
               if (layer_of_module(module) or 0) > own]
    assert not against, f"{path.relative_to(ROOT)} ({NAMES[own]}) imports upwards: " + "; ".join(against)


def test_the_check_sees_a_violation(tmp_path):
    """The test itself can fail: a runtime module importing the network code is caught."""
    assert layer_of_module("sdk.train.models.spec") == 1
    assert layer_of_module("sdk.labels") == 0 and layer_of_module("numpy") is None
    (tmp_path / "sdk" / "backends").mkdir(parents=True)
    fake = tmp_path / "sdk" / "backends" / "probe.py"
    fake.write_text("from ..labels import read_ids\n\ndef f():\n    from sdk.train.models import get_preset\n")
    found = [m for _, m in imports(fake, tmp_path)]
    assert found == ["sdk.labels.read_ids", "sdk.train.models.get_preset"]
    assert [layer_of_module(m) for m in found] == [0, 1]
