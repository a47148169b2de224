"""``manifest.json``: one typed definition of what a bundle says about itself.

Export builds a :class:`Manifest` and writes it (``sdk.bundle.write_manifest``); a
:class:`~sdk.bundle.Bundle` reads one back through :meth:`Manifest.from_json`, which checks
the schema version, that every required field is there with its type, and every graph's
inputs and outputs, naming the first problem and the fix.

Fields: ``name`` (preset), ``family``, ``task`` (semantic | unconditional | image2image),
``config`` (the network config, ``sdk.train.models.config_codec``), ``resolution`` [H, W],
``graphs`` (per graph: ``file`` (None in a torch-only bundle), named ``inputs`` /
``outputs`` with ``kind``, ``shape``, ``dtype``, ``attrs``; ``dynamic_axes``, ``parity``,
``label_lookups``, ``label_path``), ``label`` (``num_classes``, ``instance_edge``,
``palette``, ``classes``, ``convention``), ``weights`` (file, layout, source), ``parameters``,
``export`` (opset, options, timings), ``tools`` (versions), ``engines`` (key -> record,
``sdk.engines``), ``files`` (sha256 and size of every file), ``created``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

SCHEMA_VERSION = 2
"""2: graphs take class ids (int32) and uint8 edge maps, and return 8-bit images too;
1: float one-hot inputs (refused: re-export)."""
TASKS = ("semantic", "unconditional", "image2image")
TENSOR_KEYS = ("name", "kind", "shape", "dtype")


@dataclass
class Manifest:
    name: str
    family: str
    task: str
    config: dict[str, Any]
    resolution: list[int]
    graphs: dict[str, dict[str, Any]]
    label: dict[str, Any] | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    export: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""
    dtype: str = "float32"
    value_range: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_json(cls, data: Any, where: str = "manifest.json") -> "Manifest":
        """Check ``data`` against the schema; a :class:`BundleError` names the first problem."""
        if not isinstance(data, dict):
            raise BundleError(f"{where} holds {type(data).__name__}, not a manifest; re-export the bundle")
        version = data.get("schema_version")
        if version == 1:
            folder = Path(where).parent
            raise BundleError(
                f"{folder} is a schema-1 bundle (float one-hot inputs), which this sdk no longer runs: re-export "
                f"it with python -m export bundle --model {data.get('name', 'NAME')} --checkpoint "
                f"{folder / 'weights.safetensors'} --out NEW_FOLDER")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{where} has manifest schema {version!r}; this sdk reads schema {SCHEMA_VERSION}: "
                              f"re-export the bundle or upgrade sdk")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise BundleError(f"{where} has fields this sdk does not know ({', '.join(unknown)}): it was written by "
                              f"another version; re-export the bundle or upgrade sdk")
        missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise BundleError(f"{where} lacks {', '.join(missing)}; re-export the bundle")
        _check(data, where)
        return cls(**data)


def _check(data: dict[str, Any], where: str) -> None:
    def fail(what: str) -> None:
        raise BundleError(f"{where}: {what}; re-export the bundle")

    for key in ("name", "family", "task"):
        if not isinstance(data[key], str):
            fail(f"{key} is {data[key]!r}, not a string")
    if data["task"] not in TASKS:
        fail(f"task {data['task']!r} is none of {', '.join(TASKS)}")
    res = data["resolution"]
    if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res)):
        fail(f"resolution {res!r} is not [H, W]")
    if not isinstance(data["config"], dict):
        fail("config is not a mapping")
    graphs = data["graphs"]
    if not isinstance(graphs, dict) or "model" not in graphs:
        fail("graphs has no 'model' graph")
    for gname, graph in graphs.items():
        if not isinstance(graph, dict) or "file" not in graph:
            fail(f"graph {gname!r} has no file entry")
        if graph["file"] is not None and graph["file"] not in (data.get("files") or {}):
            fail(f"graph file {graph['file']} has no checksum")
        for side in ("inputs", "outputs"):
            specs = graph.get(side)
            if not isinstance(specs, list) or not specs:
                fail(f"graph {gname!r} has no {side}")
            for spec in specs:
                if not isinstance(spec, dict) or any(k not in spec for k in TENSOR_KEYS):
                    fail(f"an {side[:-1]} of graph {gname!r} lacks one of {', '.join(TENSOR_KEYS)}")
    label = data.get("label")
    if label is None and data["task"] == "semantic":
        fail("a semantic model's manifest lacks label (num_classes, palette, convention)")
    if label is not None and not (isinstance(label, dict) and isinstance(label.get("num_classes"), int)):
        fail("label has no num_classes")
