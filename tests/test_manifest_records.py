"""Manifest records are read by attribute: only ``sdk/manifest.py`` reads or writes their JSON.

Graph, tensor, parity and engine records are dataclasses (``sdk.manifest``); a string key
of one of them (``g["inputs"]``, ``record.get("quality")``) anywhere else is a second,
unchecked reading of the manifest. The scan is a plain heuristic: every subscript or
``.get`` with one of the records' field names as a string constant, in every module of the
runtime, the networks, export and the benchmarks. A dict that is not a manifest record but
has such a key (a results row, a Ray batch) is listed in :data:`ALLOWED` with the reason.
"""
from __future__ import annotations

import ast

from tests.conftest import ROOT

TREES = ("sdk", "export", "train", "benchmarks")
READER = "sdk/manifest.py"
"""The one module that reads and writes the records' JSON."""
KEYS = frozenset({"graphs", "engines", "parity", "inputs", "outputs", "kind", "dtype", "shape", "precision",
                  "backend", "quality", "psnr", "file", "attrs", "dynamic_axes", "label_lookups", "label_path",
                  "speed", "probe"})
"""Field names of the manifest's records (and the manifest's own record sections)."""

ALLOWED = {
    ("sdk/services/batch.py", 'batch["backend"]'): "a Ray Data batch column (the backend that ran each row)",
    ("sdk/services/common.py", 'weights.get("file")'): "the manifest's weights section: a plain mapping "
                                                       "(file, layout, source), not one of the typed records",
    ("sdk/backends/__init__.py", 'options.get("precision")'): "a runner's keyword options",
    ("export/bundle.py", '.get("kind")'): "a training checkpoint's meta.json (the data set kind)",
    ("benchmarks/report.py", ""): "formats results.json rows (each with its backend and precision); reads no bundle",
    ("benchmarks/edit_bench.py", "info["): "the meta of its results.json (the precision the run used)",
    ("benchmarks/app_browser.py", 'opts["backend"]'): "its table of runs to measure",
    ("benchmarks/latency.py", "p['precision']"): "a parity row of results.json",
    ("benchmarks/latency.py", 'data.get("parity", [])'): "the parity rows of a results.json being resumed",
    ("benchmarks/cpu_compare.py", ""): "measures bundles of older sdks beside new ones, schema 1 included, which "
                                       "sdk.manifest refuses: it reads their manifest.json itself",
}
"""(module, code) -> why: dicts that are not manifest records but have such a key. An empty
code allows a whole module, which must then read no bundle."""


def string_key_reads(source: str, path: str) -> list[tuple[int, str]]:
    """(line, code) of every ``x["key"]`` and ``x.get("key", ...)`` with ``key`` in :data:`KEYS`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=path)):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key, code = node.slice.value, ast.get_source_segment(source, node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            key, code = node.args[0].value, ast.get_source_segment(source, node)
        if isinstance(key, str) and key in KEYS:
            found.append((node.lineno, code or ""))
    return found


def test_the_scan_finds_string_keys_of_records():
    source = ('ins = bundle.graph("model")["inputs"]\nq = (record.get("quality") or {})\n'
              'name = spec.name\nrow = r["status"]\nx = g.parity.figures["onnxruntime_cpu"]\n')
    assert [line for line, _ in string_key_reads(source, "m.py")] == [1, 2]


def test_no_string_key_reads_of_manifest_records_outside_the_manifest_module():
    files = [p for tree in TREES for p in sorted((ROOT / tree).rglob("*.py"))]
    assert len(files) > 50 and ROOT / READER in files, f"the scan reads {len(files)} modules only"
    offenders, used = [], set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel == READER:
            continue
        for line, code in string_key_reads(path.read_text(encoding="utf-8"), rel):
            hits = {(where, snippet) for where, snippet in ALLOWED if where == rel and snippet in code}
            used |= hits
            if not hits:
                offenders.append(f"{rel}:{line}: {code}")
    assert not offenders, ("manifest records are read by attribute (sdk.manifest); string keys at:\n"
                           + "\n".join(offenders))
    assert used == set(ALLOWED), f"allow-list entries that match nothing any more: {set(ALLOWED) - used}"
    for where, snippet in ALLOWED:
        source = (ROOT / where).read_text(encoding="utf-8")
        assert snippet or not any(w in source for w in ("Bundle(", "sdk.manifest", ".graph(")), \
            f"{where} is allowed whole, as reading no bundle, but it reads one"
