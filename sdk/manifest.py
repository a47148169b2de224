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
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

SCHEMA_VERSION = 2
"""2: graphs take class ids (int32) and uint8 edge maps, and return 8-bit images too;
1: float one-hot inputs (refused: re-export)."""
TASKS = ("semantic", "unconditional", "image2image")
"""What a model does: label maps to images, noise to images, or images to images."""
TENSOR_KEYS = ("name", "kind", "shape", "dtype")


class Kind(str, enum.Enum):
    """What a graph input or output is: the vocabulary the SDK knows how to fill and read.

    A ``str`` enum, so a kind compares equal to its name (``Kind.LABEL == "label"``) and is
    written to JSON as it. Shapes: ``None`` marks the dynamic batch axis.

    ===============  ==========================================================
    kind             meaning (shape)
    ===============  ==========================================================
    label            class ids, int32 (N, H, W); attrs["num_classes"] = C. The
                     graph makes the one-hot itself, on its device (or reads the
                     ids through table lookups): see ``sdk.train.models.layers.label_map``
    instance_edge    instance boundaries as SPADE computes them, uint8 0/1 (N, H, W)
    latent           noise / style vector (N, D); attrs["distribution"] is
                     "normal" or "sphere" (normalised to the unit sphere in-graph
                     or by the caller: attrs["normalized"])
    codes            per-class latent codes (N, C, D) (GroupDNet; OASIS' noise per
                     class). attrs["broadcast"]: the model was trained with one
                     code per image given to every class (OASIS), so that is how
                     seeds draw them; rows differ only where a class is redrawn
    noise_map        a noise vector per pixel (N, D, H, W): OASIS' 3D noise made on
                     the host (``benchmarks.oasis_noise`` only; no bundle has it)
    image            RGB image in [-1, 1], float32 (N, 3, H, W)
    image_u8         the same image as 8-bit RGB, uint8 (N, H, W, 3), made in the
                     graph; attrs["of"] names the float output it rounds
    mu / logvar      encoder outputs, same shape as the latent they describe
    ===============  ==========================================================
    """

    LABEL = "label"
    INSTANCE_EDGE = "instance_edge"
    LATENT = "latent"
    CODES = "codes"
    NOISE_MAP = "noise_map"
    IMAGE = "image"
    IMAGE_U8 = "image_u8"
    MU = "mu"
    LOGVAR = "logvar"

    def __str__(self) -> str:  # "label", not "Kind.LABEL", in messages and f-strings
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


DTYPES = ("float32", "int32", "uint8")
"""The dtypes a graph's tensors take (numpy names)."""


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input or output: the one tensor description of networks
    (``sdk.train.models.spec``), export and the runtime (``manifest.json``)."""

    name: str
    kind: Kind
    shape: tuple[int | None, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            try:
                object.__setattr__(self, "kind", Kind(self.kind))
            except ValueError:
                raise ValueError(f"tensor {self.name!r} has kind {self.kind!r}, none of "
                                 f"{', '.join(k.value for k in Kind)}") from None
        object.__setattr__(self, "shape", tuple(self.shape))
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r} has dtype {self.dtype!r}, none of {', '.join(DTYPES)}")

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The shape with its dynamic axes set to ``batch``."""
        return tuple(batch if d is None else int(d) for d in self.shape)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "shape": list(self.shape), "attrs": dict(self.attrs),
                "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: Any, what: str) -> "TensorSpec":
        """Read one tensor of a manifest; a :class:`BundleError` (re-export) names the problem."""
        if not isinstance(data, dict) or any(k not in data for k in TENSOR_KEYS):
            _fail(f"{what} lacks one of {', '.join(TENSOR_KEYS)}")
        unknown = sorted(set(data) - {*TENSOR_KEYS, "attrs"})
        if unknown:
            _fail(f"{what} has fields this sdk does not know ({', '.join(unknown)})")
        shape, attrs = data["shape"], data.get("attrs") or {}
        if not (isinstance(shape, list) and all(d is None or (isinstance(d, int) and d > 0) for d in shape)):
            _fail(f"{what} has shape {shape!r}, not a list of sizes (null: the batch axis)")
        if not isinstance(data["name"], str) or not isinstance(attrs, dict):
            _fail(f"{what} has a name that is not a string or attrs that are not a mapping")
        try:
            return cls(data["name"], data["kind"], tuple(shape), attrs, data["dtype"])
        except ValueError as exc:
            _fail(str(exc))
        raise AssertionError("unreachable")


def _fail(what: str) -> None:
    """A record that does not read: raised as one line with the fix (``Manifest.from_json``
    adds the file's name)."""
    raise _RecordError(what)


class _RecordError(Exception):
    """A problem in a manifest sub-record; ``Manifest.from_json`` turns it into a BundleError."""


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
        try:
            _check(data, where)
        except _RecordError as exc:
            raise BundleError(f"{where}: {exc}; re-export the bundle") from None
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
                TensorSpec.from_json(spec, f"an {side[:-1]} of graph {gname!r}")
    label = data.get("label")
    if label is None and data["task"] == "semantic":
        fail("a semantic model's manifest lacks label (num_classes, palette, convention)")
    if label is not None and not (isinstance(label, dict) and isinstance(label.get("num_classes"), int)):
        fail("label has no num_classes")


__all__ = ["DTYPES", "SCHEMA_VERSION", "TASKS", "Kind", "Manifest", "TensorSpec"]
