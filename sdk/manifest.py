"""``manifest.json``: one typed definition of what a bundle says about itself.

Export builds a :class:`Manifest` of records and writes it (``sdk.bundle.write_manifest``); a
:class:`~sdk.bundle.Bundle` reads one back through :meth:`Manifest.from_json`, which checks
the schema version, that every required field is there with its type, and every record in
it, naming the first problem and the fix. Only this module reads and writes the records'
JSON: the runtime, export and the benchmarks use the dataclasses.

Fields: ``name`` (preset), ``family``, ``task`` (one of :data:`TASKS`), ``config`` (the
network config, ``sdk.train.models.config_codec``), ``resolution`` [H, W], ``graphs`` (name
-> :class:`GraphRecord`: ``file`` (None in a torch-only bundle), ``inputs`` / ``outputs``
(:class:`TensorSpec`: name, :class:`Kind`, shape, attrs, dtype), ``dynamic_axes``,
``parity`` (:class:`ParityRecord`), ``label_lookups``, ``label_path``), ``label``
(``num_classes``, ``instance_edge``, ``palette``, ``classes``, ``convention``), ``weights``
(file, layout, source), ``parameters``, ``export`` (opset, options, timings), ``tools``
(versions), ``engines`` (key -> :class:`EngineRecord`, ``sdk.engines``: with its
:class:`BatchProfile`, :class:`ParityRecord`, :class:`QualityRecord`, :class:`SpeedRecord`
and :class:`ProbeRecord`), ``files`` (sha256 and size of every file), ``created``.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

from .deprecation import deprecated
from .errors import BundleError

SCHEMA_VERSION = 3
"""3: graph, tensor, parity and engine records typed (this module's dataclasses) and checked
field by field, tensor kinds from :class:`Kind`, no parity (null) for a graph without an ONNX
file; 2: the same records unchecked (read, and written back as 3); 1: float one-hot inputs
(refused: re-export)."""
READABLE = (2, SCHEMA_VERSION)
"""Schema versions this sdk reads."""
TASKS = ("semantic", "unconditional", "image2image")
"""What a model does: label maps to images, noise to images, or images to images."""
TENSOR_KEYS = ("name", "kind", "shape", "dtype")


class _LegacyAccess:
    """``record["field"]`` and ``record.get("field")``: the records were plain dicts before
    schema 3; kept for one version, with a warning, and answered from the record's JSON."""

    def __getitem__(self, key: str) -> Any:
        deprecated(f"{type(self).__name__}[{key!r}] is deprecated (it goes in the next version): manifest records "
                   f"are dataclasses (sdk.manifest): read the attribute")
        return self.to_json()[key]  # type: ignore[attr-defined]

    def get(self, key: str, default: Any = None) -> Any:
        deprecated(f"{type(self).__name__}.get({key!r}) is deprecated (it goes in the next version): manifest "
                   f"records are dataclasses (sdk.manifest): read the attribute")
        return self.to_json().get(key, default)  # type: ignore[attr-defined]


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
class TensorSpec(_LegacyAccess):
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
        """Read one tensor of a manifest; a :class:`BundleError` names the problem and ``what``."""
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


def _fail(what: str) -> NoReturn:
    """A record that does not read: raised as one line (``Manifest.from_json`` adds the file's
    name and the fix)."""
    raise _RecordError(what)


class _RecordError(BundleError):
    """A problem in a record, named without the file; ``Manifest.from_json`` says which file
    and how to fix it."""


# -- records: what a manifest holds beside its top-level fields ------------------------------
_TYPES: dict[str, Any] = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict, "list": list}
"""Plain field annotations and the JSON values they take (others: any value)."""


def _fields(cls: type, data: Any, what: str, readers: dict[str, Callable[[Any, str], Any]]) -> dict[str, Any]:
    """``data`` as the keyword arguments of dataclass ``cls``: every required field there, none
    it does not know, plain fields of their annotated type, the others read by ``readers``."""
    if not isinstance(data, dict):
        _fail(f"{what} is {type(data).__name__}, not a record")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _fail(f"{what} has fields this sdk does not know ({', '.join(unknown)})")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        _fail(f"{what} lacks {', '.join(missing)}")
    out = {}
    for name, value in data.items():
        annotation = str(fields[name].type)
        if value is None and annotation.endswith("| None"):
            out[name] = None
        elif name in readers:
            out[name] = readers[name](value, what)
        elif not isinstance(value, _TYPES.get(annotation.split("[")[0].split(" |")[0], object)):
            _fail(f"{what} has {name} {value!r}, not {annotation}")
        else:
            out[name] = value
    return out


def _part(cls: Any, name: str) -> Callable[[Any, str], Any]:
    """The reader of field ``name``, a record of ``cls``, of a record read as ``what``."""
    return lambda value, what: cls.from_json(value, f"the {name} of {what}")


def _json(value: Any) -> Any:
    """A record, or a mapping or list of them, as JSON values (new containers: no aliasing)."""
    if isinstance(value, (_Record, TensorSpec)):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


class _Record(_LegacyAccess):
    """A manifest sub-record (a dataclass): read with every field checked (:func:`_fields`),
    written with its optional fields left out while they are None, but those in ``_keep_none``
    (a None there says something)."""

    _keep_none: tuple[str, ...] = ()

    @classmethod
    def _readers(cls) -> dict[str, Callable[[Any, str], Any]]:
        """Readers of the fields that hold records: ``reader(value, what)``, ``what`` naming
        the record that holds them."""
        return {}

    @classmethod
    def from_json(cls, data: Any, what: str) -> Any:
        """Read one record; a problem is raised naming ``what`` (``Manifest.from_json`` adds the
        file and the fix)."""
        return cls(**_fields(cls, data, what, cls._readers()))

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None or f.name in self._keep_none:
                out[f.name] = _json(value)
        return out


@dataclass(frozen=True)
class BatchProfile(_Record):
    """Dynamic batch range of an engine: TensorRT tunes for ``opt``, accepts ``min..max``."""

    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass
class ParityRecord(_Record):
    """How far a graph or an engine is from the network in PyTorch FP32 on seeded inputs.

    ``figures``: what was measured -> its figures (``{"batch_1": relative L2, ...,
    "blocks_batch_1": ...}``): for a graph, per runtime (``onnxruntime_cpu``); for an engine,
    per graph (``model``, ``encoder``; with that graph's ``u8_max_levels``). In JSON the
    figures sit beside the other fields. ``labels`` (graphs) says what the label maps were,
    ``limit`` (engines) the error the build allowed, ``u8_max_levels`` (graphs) how many levels
    the 8-bit image was off the rounded float image at most.
    """

    reference: str
    metric: str
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: str | None = None
    limit: float | None = None
    u8_max_levels: int | None = None

    @classmethod
    def from_json(cls, data: Any, what: str) -> "ParityRecord":
        if not isinstance(data, dict):
            _fail(f"{what} is {type(data).__name__}, not a record")
        figures = {k: v for k, v in data.items() if isinstance(v, dict)}
        return cls(**_fields(cls, {k: v for k, v in data.items() if k not in figures}, what, {}), figures=figures)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, "metric": self.metric}
        out.update({k: v for k, v in (("labels", self.labels), ("limit", self.limit)) if v is not None})
        out.update(_json(self.figures))
        if self.u8_max_levels is not None:
            out["u8_max_levels"] = self.u8_max_levels
        return out


@dataclass
class GraphRecord(_Record):
    """One graph of a bundle: its ONNX file (None in a torch-only bundle), typed inputs and
    outputs, the axes that are dynamic, its parity against the network (None: no ONNX graph
    measured), how many label convolutions became lookups and how it reads its label."""

    file: str | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    dynamic_axes: dict[str, dict[str, str]] = field(default_factory=dict)
    parity: ParityRecord | None = None
    label_lookups: int = 0
    label_path: dict[str, str] | None = None

    _keep_none = ("file", "parity", "label_path")

    @classmethod
    def _readers(cls) -> dict[str, Callable[[Any, str], Any]]:
        def tensors(side: str) -> Callable[[Any, str], list[TensorSpec]]:
            def read(value: Any, graph: str) -> list[TensorSpec]:
                if not isinstance(value, list) or not value:
                    _fail(f"{graph} has no {side}")
                return [TensorSpec.from_json(s, f"an {side[:-1]} of {graph}") for s in value]
            return read
        return {"inputs": tensors("inputs"), "outputs": tensors("outputs"),
                "parity": _part(ParityRecord, "parity")}

    def input_of(self, kind: Kind | str) -> TensorSpec | None:
        """The first input of ``kind``, or None."""
        return next((s for s in self.inputs if s.kind == kind), None)

    def outputs_of(self, kind: Kind | str) -> list[TensorSpec]:
        """The outputs of ``kind``, in graph order."""
        return [s for s in self.outputs if s.kind == kind]

    def takes(self, *kinds: Kind | str) -> bool:
        """Whether the graph has an input of one of ``kinds``."""
        return any(s.kind in kinds for s in self.inputs)


@dataclass
class QualityRecord(_Record):
    """A CPU engine's 8-bit images against the bundle's FP32 graph (``export.engine_quality``).

    ``model``: the synthesis graph's figures pooled over the set (``psnr_db``,
    ``max_abs_levels``, ``mean_abs_levels``, ``relative_l2``) and, since the held-out set,
    the worst image's PSNR (``worst_psnr_db``, ``worst_image``) beside the mean
    (``mean_psnr_db``); ``rows``: row -> worst / mean / images; ``images``: map -> PSNR;
    ``renderer``: the trained demo's PSNR against the procedural renderer. ``bar_psnr_db``:
    the bar the build held it to (on the worst image: ``bar_on``).
    """

    reference: str
    inputs: str
    metric: str
    bar_psnr_db: float
    model: dict[str, Any]
    bar_on: str | None = None
    rows: dict[str, dict[str, Any]] | None = None
    images: dict[str, float] | None = None
    renderer: dict[str, Any] | None = None

    @property
    def worst_psnr_db(self) -> float | None:
        """PSNR of the worst held-out image (None: built before it was recorded)."""
        value = self.model.get("worst_psnr_db")
        return None if value is None else float(value)

    @property
    def mean_psnr_db(self) -> float | None:
        value = self.model.get("mean_psnr_db")
        return None if value is None else float(value)

    @property
    def worst_image(self) -> str | None:
        return self.model.get("worst_image")


@dataclass
class SpeedRecord(_Record):
    """A CPU engine against onnxruntime FP32 when it was built: median (and p90) ms of a batch-1
    call of each, the speed-up, one-time costs (import, load, first call) and the calls after
    which they are repaid (``break_even_calls``; None: no saving per call)."""

    median_ms: float
    onnxruntime_fp32_ms: float
    speedup: float
    p90_ms: float | None = None
    batch: int | None = None
    threads: int | None = None
    outputs: list[str] | None = None
    load_ms: float | None = None
    onnxruntime_fp32_load_ms: float | None = None
    first_call_ms: float | None = None
    onnxruntime_fp32_first_call_ms: float | None = None
    import_ms: float | None = None
    runs: int | None = None
    warmup: int | None = None
    method: str | None = None
    break_even_calls: float | None = None

    _keep_none = ("break_even_calls",)


@dataclass(frozen=True)
class ProbeRecord(_Record):
    """An engine file loaded and run once in a fresh process (AOTInductor packages): whether it
    worked, the process's return code (None: it hung), how long it took, and why it failed."""

    ok: bool
    returncode: int | None
    seconds: float
    detail: str = ""

    _keep_none = ("returncode",)


@dataclass
class EngineRecord(_Record):
    """One built engine (``sdk.engines``; written by ``sdk.export.engine_records``).

    ``key``: backend, precision, device and runtime versions (its folder under ``engines/``);
    ``files``: graph -> path in the bundle; ``shapes``: input -> fixed non-batch dims where
    overridden; ``parity`` (TensorRT, AOTInductor) against PyTorch FP32; ``quality`` and
    ``speed`` (CPU engines) against the bundle's FP32 graph; ``notes``: the builder's free-form
    notes per backend (options, calibration and its class coverage, escalation steps);
    ``probe``: graph -> the load probe (AOTInductor).
    """

    key: str
    backend: str
    precision: str
    device: str
    versions: dict[str, str]
    batch: BatchProfile
    files: dict[str, str]
    shapes: dict[str, list[int]] = field(default_factory=dict)
    parity: ParityRecord | None = None
    quality: QualityRecord | None = None
    speed: SpeedRecord | None = None
    build_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, ProbeRecord] = field(default_factory=dict)
    created: str = ""

    _keep_none = ("build_s",)

    @classmethod
    def _readers(cls) -> dict[str, Callable[[Any, str], Any]]:
        def probes(value: Any, what: str) -> dict[str, ProbeRecord]:
            if not isinstance(value, dict):
                _fail(f"the probe of {what} is not a mapping of graphs")
            return {g: ProbeRecord.from_json(p, f"the {g!r} probe of {what}") for g, p in value.items()}
        return {"batch": _part(BatchProfile, "batch"), "parity": _part(ParityRecord, "parity"),
                "quality": _part(QualityRecord, "quality"), "speed": _part(SpeedRecord, "speed"), "probe": probes}

    @property
    def worst_psnr_db(self) -> float | None:
        """The worst held-out image's PSNR (None: no quality, or built before it was recorded)."""
        return None if self.quality is None else self.quality.worst_psnr_db

    @property
    def speedup(self) -> float:
        """The speed-up over onnxruntime FP32 measured at build (0 when none was)."""
        return 0.0 if self.speed is None else float(self.speed.speedup or 0.0)

    def failed_probes(self) -> dict[str, ProbeRecord]:
        """Graph -> probe, for the files that failed their load probe."""
        return {g: p for g, p in self.probe.items() if not p.ok}


@dataclass
class Manifest:
    """What a bundle says about itself (see the module docstring)."""

    name: str
    family: str
    task: str
    config: dict[str, Any]
    resolution: list[int]
    graphs: dict[str, GraphRecord]
    label: dict[str, Any] | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    export: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    engines: dict[str, EngineRecord] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = ""
    dtype: str = "float32"
    value_range: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"schema_version": data.pop("schema_version"), **data}

    @classmethod
    def from_json(cls, data: Any, where: str = "manifest.json") -> "Manifest":
        """Check ``data`` against the schema and read its records; a :class:`BundleError`
        names the first problem. A schema-2 manifest reads as schema 3 (the same records)."""
        if not isinstance(data, dict):
            raise BundleError(f"{where} holds {type(data).__name__}, not a manifest; re-export the bundle")
        _check_version(data, where)
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
            _check(data)
            records = {"graphs": _graphs(data), "engines": _engines(data)}
        except _RecordError as exc:
            raise BundleError(f"{where}: {exc}; re-export the bundle") from None
        return cls(**{**data, **records, "schema_version": SCHEMA_VERSION})


def _check_version(data: dict[str, Any], where: str) -> None:
    """Refuse a schema this sdk does not read: schema 1 with the command that re-exports it."""
    version = data.get("schema_version")
    if version == 1:
        folder = Path(where).parent
        raise BundleError(
            f"{folder} is a schema-1 bundle (float one-hot inputs), which this sdk no longer runs: re-export "
            f"it with python -m export bundle --model {data.get('name', 'NAME')} --checkpoint "
            f"{folder / 'weights.safetensors'} --out NEW_FOLDER")
    if version not in READABLE:
        raise BundleError(f"{where} has manifest schema {version!r}; this sdk reads schema "
                          f"{' and '.join(map(str, READABLE))}: re-export the bundle or upgrade sdk")


def _check(data: dict[str, Any]) -> None:
    """The top-level fields: their types, the task, the resolution and the label."""
    for key in ("name", "family", "task"):
        if not isinstance(data[key], str):
            _fail(f"{key} is {data[key]!r}, not a string")
    if data["task"] not in TASKS:
        _fail(f"task {data['task']!r} is none of {', '.join(TASKS)}")
    res = data["resolution"]
    if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res)):
        _fail(f"resolution {res!r} is not [H, W]")
    if not isinstance(data["config"], dict):
        _fail("config is not a mapping")
    label = data.get("label")
    if label is None and data["task"] == "semantic":
        _fail("a semantic model's manifest lacks label (num_classes, palette, convention)")
    if label is not None and not (isinstance(label, dict) and isinstance(label.get("num_classes"), int)):
        _fail("label has no num_classes")


def _graphs(data: dict[str, Any]) -> dict[str, GraphRecord]:
    """The graph records; a graph's ONNX file must have its checksum."""
    graphs = data["graphs"]
    if not isinstance(graphs, dict) or "model" not in graphs:
        _fail("graphs has no 'model' graph")
    out = {name: GraphRecord.from_json(graph, f"graph {name!r}") for name, graph in graphs.items()}
    files = data.get("files") or {}
    for graph in out.values():
        if graph.file is not None and graph.file not in files:
            _fail(f"graph file {graph.file} has no checksum")
    return out


def _engines(data: dict[str, Any]) -> dict[str, EngineRecord]:
    """The engine records, each under its own key."""
    engines = data.get("engines") or {}
    if not isinstance(engines, dict):
        _fail("engines is not a mapping of keys to engine records")
    out = {key: EngineRecord.from_json(record, f"engine {key!r}") for key, record in engines.items()}
    for key, record in out.items():
        if record.key != key:
            _fail(f"engine {key!r} records the key {record.key!r}")
    return out


__all__ = ["DTYPES", "READABLE", "SCHEMA_VERSION", "TASKS", "BatchProfile", "EngineRecord", "GraphRecord", "Kind",
           "Manifest", "ParityRecord", "ProbeRecord", "QualityRecord", "SpeedRecord", "TensorSpec"]
