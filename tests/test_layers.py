"""The packages import one way: runtime core <- doors, and runtime <- networks and training
<- export <- benchmarks.

``sdk/`` (the runtime core) imports nothing of ours above it. ``sdk/services/`` (the doors:
batch, serve, app, and ``python -m sdk``) is a floor of its own above the core and below
nothing of ours but benchmarks: it imports the core only through its public API (names a
core module lists in ``__all__``), and neither the core, the networks nor export import it.
``train/`` (``sdk.train``: the networks, their deploy tools and the trainer) imports the core
only; ``export/`` (``sdk.export``) imports both; ``benchmarks/`` (``sdk.benchmarks``) anything.
Every import counts, the lazy ones inside functions too (a lazy import still ties the layers).
The torch runner, which rebuilds networks, reaches the runtime through an entry point, not an
import.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLOORS = ("core", "services", "train", "export", "benchmarks")
MAY_IMPORT = {
    "core": {"core"},
    "services": {"core", "services"},
    "train": {"core", "train"},
    "export": {"core", "train", "export"},
    "benchmarks": set(FLOORS),
}
NAMES = {"core": "runtime core (sdk/)", "services": "doors (sdk/services/)", "train": "networks and training (train/)",
         "export": "export (export/)", "benchmarks": "benchmarks"}
TOPS = {"sdk": "core", "train": "train", "export": "export", "benchmarks": "benchmarks"}
PROGRAM = Path("sdk") / "__main__.py"
"""``python -m sdk`` is the whole program, every door included: it stands on the doors' floor."""


def floor_of_module(module: str) -> str | None:
    """Floor of an absolute module name, None for third-party modules."""
    parts = module.split(".")
    if parts[0] != "sdk":
        return None
    if len(parts) > 1 and parts[1] == "services":
        return "services"
    return TOPS.get(parts[1], "core") if len(parts) > 1 else "core"


def floor_of_file(rel: Path) -> str:
    if rel == PROGRAM or rel.parts[:2] == ("sdk", "services"):
        return "services"
    return TOPS[rel.parts[0]]


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, relative ones resolved; a
    ``from M import name`` of ours gives ``M.name``."""
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
            out += [(node.lineno, f"{module}.{a.name}" if floor_of_module(module) is not None else module)
                    for a in node.names]
    return out


def public(name: str) -> bool:
    """Whether ``name`` (``sdk.X.Y``: the name Y of core module sdk.X, or module sdk.X.Y)
    is public: listed in its module's ``__all__``, or a module that has one."""
    try:
        module = importlib.import_module(name)
        return hasattr(module, "__all__")
    except ImportError:
        pass
    owner, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(owner)
    except ImportError:
        return False
    return attr in getattr(module, "__all__", ())


SOURCES = sorted(p for top in TOPS for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_imports_go_down_the_floors(path):
    rel = path.relative_to(ROOT)
    own = floor_of_file(rel)
    against = [f"line {line}: {module} ({NAMES[floor_of_module(module)]})" for line, module in imports(path)
               if floor_of_module(module) is not None and floor_of_module(module) not in MAY_IMPORT[own]]
    assert not against, f"{rel} ({NAMES[own]}) imports against the floors: " + "; ".join(against)
    if own == "services":
        private = [f"line {line}: {module}" for line, module in imports(path)
                   if floor_of_module(module) == "core" and not public(module)]
        assert not private, f"{rel} reaches past the core's public API (add the name to its module's __all__, " \
                            f"or use one that is there): " + "; ".join(private)


def test_the_services_floor_exists():
    doors = {p.relative_to(ROOT).as_posix() for p in SOURCES if floor_of_file(p.relative_to(ROOT)) == "services"}
    assert {"sdk/services/batch.py", "sdk/services/serve.py", "sdk/services/app.py", "sdk/services/cli.py",
            "sdk/__main__.py"} <= doors
    assert not (ROOT / "sdk" / "batch.py").exists() and not (ROOT / "sdk" / "serve.py").exists()


def test_the_check_sees_a_violation(tmp_path):
    """The test itself can fail: a runtime module importing the network code or a door, a door
    reaching into a private core module, the networks importing a door."""
    assert floor_of_module("sdk.train.models.spec") == "train"
    assert floor_of_module("sdk.labels") == "core" and floor_of_module("numpy") is None
    assert floor_of_module("sdk.services.batch") == "services"
    (tmp_path / "sdk" / "backends").mkdir(parents=True)
    fake = tmp_path / "sdk" / "backends" / "probe.py"
    fake.write_text("from ..labels import read_ids\n\ndef f():\n    from sdk.train.models import get_preset\n"
                    "    from sdk.services.serve import start\n")
    found = [m for _, m in imports(fake, tmp_path)]
    assert found == ["sdk.labels.read_ids", "sdk.train.models.get_preset", "sdk.services.serve.start"]
    assert [floor_of_module(m) not in MAY_IMPORT["core"] for m in found] == [False, True, True]
    assert "services" not in MAY_IMPORT["train"] and "services" not in MAY_IMPORT["export"]
    # a door may use sdk.Synthesizer, not sdk.synthesizer._Request or an unlisted helper
    assert public("sdk.Synthesizer") and public("sdk.labels.open_image") and public("sdk.intake")
    assert not public("sdk.synthesizer._Request") and not public("sdk.synthesizer.progress_bar")
