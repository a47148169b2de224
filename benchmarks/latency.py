"""Latency benchmark: models x backends x precision x batch x resolution.

    python benchmarks/latency.py --models spade-ade20k,oasis-ade20k --batch 1,4,8 --out runs/latency
    python benchmarks/latency.py --quick --out /tmp/lat     # CPU smoke run, reduced sizes, < 1 min

What is measured, per configuration (one record each in ``results.json``, which is
rewritten after every record: a run killed half way keeps what it finished):

* latency of one call, median and p90 over ``--runs`` (>= 50) calls after ``--warmup``
  calls. GPU: CUDA events around each call, recorded on the caller's stream; CPU:
  ``time.perf_counter``. Rows come in two kinds (``io``), each with its own reference:

  - ``host`` (end to end): class ids from host numpy in, the 8-bit image to host numpy
    out (the SDK's ``Runner.run`` path, host<->device copies included). Its reference,
    ``reference-host``, is what the official test code costs a user: host ids ->
    upload -> float one-hot on the GPU -> network -> float image downloaded -> 8 bits on
    the host (numpy, as the official ``tensor2im``).
  - ``device`` (device-resident): ids already on the device in, the 8-bit image left there
    (torch runner ``output="tensor"``, input checks off). Its reference,
    ``reference-device``: ids already on the device -> float one-hot made there -> network,
    the float image left there.

  Both references run the same network (spectral norm folded, same weights) at the row's
  precision (FP16 / BF16 with FP32 norms, channels-last on GPU), compiled with
  ``torch.compile(mode="reduce-overhead", dynamic=False)`` on GPU (CUDA graphs; default
  mode on CPU), compiled anew for each batch size. "x reference" compares a row only
  with the reference of its own kind, precision, model, size and batch.
* images/s = batch / median latency.
* peak memory. GPU: ``torch.cuda.max_memory_allocated`` over the timed calls (the peak
  counters are reset after warm-up, so compilation, autotuning and cuDNN's algorithm
  trials are not counted), less what was allocated before the configuration was built;
  ``device_used_mb`` cross-checks it with ``cudaMemGetInfo`` (onnxruntime / tensorrt
  allocate outside torch). CPU: growth of the resident set size (``/proc/self/statm``,
  sampled after every call) over its value before the runner was built.
* parameters of the synthesis graph; GFLOPs from ``sdk.train.models.flops.graph_flops``
  (``FlopCounterMode``: convolutions and matmuls, one multiply-accumulate = 2 FLOPs).
* the roofline floor and efficiency = floor / measured median, from ceilings measured in
  the same process (``benchmarks.roofline.measure_ceilings``: an 8192^3 GEMM per precision
  and a 1 GiB device copy), not a datasheet. CPU: no roofline (fields are null).
* ``tf32``: on GPU, whether torch allowed TF32 for this row (cuDNN or cuBLAS), whatever
  its precision (FP16 rows keep their norms in FP32). ``null``: not a torch row, or CPU.

Between configurations the run collects garbage, resets dynamo (``torch._dynamo.reset()``:
no earlier configuration's graphs or CUDA-graph pools stay alive) and empties the CUDA cache.
``--parity fp16`` adds one figure per preset: the relative L2 error of the torch runner's
float image at that precision against FP32 (TF32 off), eager, batch 1, block label maps.

Backends: ``reference-device``, ``reference-host`` (above), ``torch-eager``,
``torch-compiled`` (``torch.compile``, with the runner's own CUDA graphs on GPU), ``aoti``
(a package built into the run's bundle with ``export.engine_build``), ``onnxruntime`` (the bundle's FP32
ONNX graph; other precisions are skipped), ``tensorrt`` (skipped with the reason when
TensorRT is not installed), ``openvino`` (FP32 / BF16 / INT8) and ``onnxruntime-int8``
(CPU engines built into the run's bundle by ``export.engine_build``, through the SDK's
runners; an engine below its quality bar is skipped with its figure; each record's
``extra`` carries the engine's quality against the FP32 graph).

``--device cpu`` without ``--quick``: the CPU engines side by side at full size, batch 1,
3 warm-up calls: onnxruntime FP32, OpenVINO FP32 / BF16 / INT8 and onnxruntime INT8 for
the presets of the CPU targets (``CPU_MODELS``; the demo preset is the trained bundle
``demo/spade-street`` itself), each engine's held-out quality (worst and mean PSNR,
escalation) from its record, what ``auto`` picks per preset (``auto_picks`` in the
results), plus ``SUMMARY.md``: the CPU table and which targets are met
(``benchmarks.report.cpu_summary``). Random weights with calibrated normalisation statistics:
latency does not depend on the weights' values.

``--quick``: CPU, torch-eager + onnxruntime, FP32, batch 1 and 2, each preset at its CI
size (``Preset.test_overrides``), 50 runs; the report marks these sizes as reduced.
Its default model (progan-64) keeps it under a minute; ``--quick --models all`` measures
every preset (about 15 minutes on 2 cores, most of it exporting).

Output in ``--out``: ``results.json`` (one record per measurement), ``results.md`` (the
table, with each backend's speed-up over torch-eager FP32 of the same run), ``latency.png``
(latency vs batch per backend) and ``claims.md`` / ``claims.json`` (the papers' efficiency
claims next to our counts, ``benchmarks/report.py``). With ``--append`` (one run over
several processes: ``gpu_check.sh`` runs each preset in its own) the records already in
``--out``'s ``results.json`` are kept and only ``results.json`` / ``results.md`` are
written. Bundles are exported to ``--bundles`` (default ``--out``/bundles).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

try:
    import torch
except ImportError:  # the runtime-only install: main() says what to install; --help still works
    torch = None

from sdk.atomic import write_bytes_atomic
from sdk.benchmarks.roofline import GPUSpec, measure_ceilings, min_bytes, roofline_floor_ms
from sdk.engines import BACKEND_PRECISIONS, CPU_ENGINE_BACKENDS
from sdk.manifest import EngineRecord, Kind

BACKENDS = ("reference-device", "reference-host", "torch-eager", "torch-compiled", "aoti", "onnxruntime",
            "tensorrt", "openvino", "onnxruntime-int8")
REFERENCES = {"reference-device": "device", "reference-host": "host"}
"""The reference rows and the kind of row (``io``) each one is the reference of."""
TORCH_BACKENDS = ("torch-eager", "torch-compiled")
NOISY_P90_OVER_MEDIAN = 1.5
"""A measurement whose p90 exceeds its median by this factor is flagged noisy."""
DEFAULT_MODELS = ("spade-ade20k", "oasis-ade20k", "dpsims-ade20k", "groupdnet-deepfashion",
                  "pix2pixhd-cityscapes-1024", "msgunet-512", "progan-256")
QUICK_MODELS = ("progan-64",)
CPU_MODELS = ("spade-cityscapes", "spade-ade20k", "oasis-ade20k", "groupdnet-deepfashion", "dpsims-ade20k",
              "spade-demo-street")
"""The presets of the CPU engine targets (issue 13), the trained demo bundle last."""
DEMO_PRESET, DEMO_BUNDLE = "spade-demo-street", ROOT / "demo" / "spade-street"
"""At full size the demo preset is measured on the trained bundle itself (same network)."""


@dataclass
class Record:
    """One measurement (or the reason there is none)."""

    model: str
    backend: str
    precision: str
    batch: int
    height: int
    width: int
    reduced_size: bool
    device: str
    status: str = "ok"  # "ok", "skipped: why", "error: what"
    runs: int = 0
    warmup: int = 0
    timer: str = ""
    median_ms: float | None = None
    p90_ms: float | None = None
    mean_ms: float | None = None
    images_per_s: float | None = None
    peak_memory_mb: float | None = None
    memory_method: str = ""
    params: int | None = None
    gflops_per_image: float | None = None
    gflops_per_batch: float | None = None
    roofline_floor_ms: float | None = None
    efficiency: float | None = None
    roofline_note: str = ""
    speedup_vs_eager_fp32: float | None = None  # torch-eager FP32 median / this median, same model, size, batch
    speedup_vs_reference: float | None = None  # reference-<io> median / this median, same io, precision, model, size, batch
    speedup_vs_onnxruntime_fp32: float | None = None  # onnxruntime FP32 median / this median (CPU engines)
    io: str = "host"  # "host": numpy in and out (end to end); "device": tensors on the device
    tf32: bool | None = None  # GPU torch rows: whether torch allowed TF32 (cuDNN or cuBLAS); None: n/a
    noisy: bool = False  # p90 > NOISY_P90_OVER_MEDIAN x median: the machine was busy
    device_used_mb: float | None = None  # GPU: cudaMemGetInfo delta, cross-check of peak_memory_mb
    extra: dict[str, Any] = field(default_factory=dict)


# -- measurement ----------------------------------------------------------------------
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def time_calls(fn: Callable[[], Any], runs: int, warmup: int, cuda: bool,
               after_each: Callable[[], None] | None = None,
               after_warmup: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` calls (``after_warmup``
    runs between the two, e.g. to reset peak-memory counters)."""
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    if after_warmup:
        after_warmup()
    times = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if after_each:
            after_each()
    return times


# -- backends ---------------------------------------------------------------------------
class Skip(Exception):
    """This backend / precision cannot run here; the message says why."""


def official_one_hot(ids: Any, num_classes: int) -> Any:
    """(N, H, W) class ids on a device -> (N, C, H, W) float one-hot made there, as the
    official code makes it (``FloatTensor(N, C, H, W).zero_().scatter_(1, label, 1.0)``)."""
    n, h, w = ids.shape
    out = torch.zeros(n, num_classes, h, w, dtype=torch.float32, device=ids.device)
    return out.scatter_(1, ids.long().unsqueeze(1), 1.0)


def to_uint8_host(image: Any) -> np.ndarray:
    """(N, 3, H, W) float image in [-1, 1] on a device -> (N, H, W, 3) uint8 numpy, as the
    official ``tensor2im`` does it: downloaded as float, converted on the host."""
    x = image.float().cpu().numpy()
    return np.clip((np.transpose(x, (0, 2, 3, 1)) + 1) / 2.0 * 255.0, 0, 255).astype(np.uint8)


def _reference_callable(bundle: Any, precision: str, device: str, io: str) -> Callable[[dict], Any]:
    """The family's network as its official code runs it, at ``precision`` (FP16 / BF16 with
    FP32 norms; channels-last on GPU), ``torch.compile(mode="reduce-overhead",
    dynamic=False)`` on GPU. Make one per batch size (the caller resets dynamo between).

    ``io="device"``: feeds are class ids (and edges) already on the device; the float
    one-hot is made there and the float image is left there. ``io="host"``: numpy feeds
    are uploaded first and the float image comes back as 8-bit numpy (:func:`to_uint8_host`)."""
    from sdk.train.deploy.precision import ReducedPrecision
    from sdk.train.deploy.runner import build_model

    if device == "cpu" and precision == "tf32":
        raise Skip("tf32 is a GPU precision")
    cuda = device == "cuda"
    spec = build_model(bundle).graphs()["model"]
    module = spec.module.to(device).eval()
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        module = ReducedPrecision(module, dtype, channels_last=cuda).eval()
    elif cuda:
        module = module.to(memory_format=torch.channels_last)
    if cuda:  # the same settings as the torch runner: TF32 only for tf32, cuDNN autotuning on
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.benchmark = True
    module = torch.compile(module, mode="reduce-overhead" if cuda else "default", dynamic=False)
    image_index = next(i for i, o in enumerate(spec.outputs) if o.kind == "image")

    def network_inputs(feeds: dict) -> list:
        args = []
        for s in spec.inputs:
            x = feeds[s.name]
            if s.kind == "label":
                x = official_one_hot(x, s.attrs["num_classes"])
            elif s.kind == "instance_edge":
                x = x.float().unsqueeze(1)
            args.append(x)
        return args

    def image(args: list) -> Any:
        with torch.inference_mode():
            out = module(*args)
        return out[image_index] if isinstance(out, tuple) else out

    if io == "device":
        def run(feeds: dict) -> Any:
            return image(network_inputs(feeds))
    else:
        def run(feeds: dict) -> Any:
            on_device = {n: torch.from_numpy(np.ascontiguousarray(x)).to(device) for n, x in feeds.items()}
            return to_uint8_host(image(network_inputs(on_device)))
    return run


def _runner_callable(backend: str, bundle: Any, precision: str, batches: Sequence[int], device: str,
                     io: str) -> Callable[[dict], Any]:
    """One of the SDK's runners, called as the Synthesizer calls it: class ids in, the 8-bit
    image out (``io="host"``: numpy both ways; ``"device"``: CUDA tensors both ways)."""
    from sdk.backends import make_runner

    options: dict[str, Any] = {}
    if backend in TORCH_BACKENDS:
        if device == "cpu" and precision == "tf32":
            raise Skip("tf32 is a GPU precision")
        compiled = backend == "torch-compiled"
        # device rows: tensors in and out, no range check of the ids (one reduction and a
        # host sync per call, which the reference does not pay either)
        options = dict(device=device, precision=precision, compile=compiled, cuda_graphs=compiled and device == "cuda",
                       output="tensor" if io == "device" else "numpy", check_inputs=io != "device")
        name = "torch"
    elif backend == "onnxruntime":
        if precision != "fp32":
            raise Skip("onnxruntime runs the bundle's FP32 graph")
        if io == "device":
            raise Skip("onnxruntime takes host arrays here")
        options = {"providers": ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]}
        name = "onnxruntime"
    elif backend in ("aoti", "tensorrt"):
        if io == "device":
            raise Skip(f"{backend} takes host arrays here")
        bundle = _build_engine(bundle, backend, precision, batches, device)
        options, name = {"precision": precision}, backend
    elif backend in CPU_ENGINE_BACKENDS:
        if device != "cpu" or io == "device":
            raise Skip(f"{backend} is a CPU engine (host arrays)")
        if precision not in BACKEND_PRECISIONS[backend]:
            raise Skip(f"{backend} builds {', '.join(BACKEND_PRECISIONS[backend])} engines")
        bundle = _build_engine(bundle, backend, precision, batches, device)
        options, name = {"precision": precision}, backend
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    runner = make_runner(bundle, name, **options)
    wanted = [o.name for o in bundle.graph("model").outputs_of(Kind.IMAGE_U8)][:1] or None

    def call(feeds: dict) -> Any:
        return runner.run(feeds, outputs=wanted)
    record = getattr(runner, "record", None)
    facts = cpu_engine_facts(record) if record and name in CPU_ENGINE_BACKENDS else {}
    call.extra = facts  # type: ignore[attr-defined]
    return call


def cpu_engine_facts(record: EngineRecord) -> dict[str, Any]:
    """What a CPU engine's record says about it, for the latency record's ``extra``."""
    quality = record.quality
    quantization = record.notes.get("quantization") or {}
    escalation = record.notes.get("escalation") or {}
    return {"engine_key": record.key, "quality_vs_fp32": quality and quality.model,
            "quality_rows": quality and quality.rows, "quality_inputs": quality and quality.inputs,
            "quality_bar_psnr_db": quality and quality.bar_psnr_db, "renderer": quality and quality.renderer,
            "build_speed": record.speed and record.speed.to_json(), "kept_float": quantization.get("kept_float"),
            "calibration_classes": quantization.get("calibration_classes"),
            "escalation": {k: escalation[k] for k in ("kept_float_groups", "speed_cost", "steps") if k in escalation}
            or None}


def _build_engine(bundle: Any, backend: str, precision: str, batches: Sequence[int], device: str) -> Any:
    """Build ``backend``'s engine into the bundle unless it has one; returns the bundle
    re-read from disk (the build rewrote its manifest: a runner made from the old object
    would not see the new engine)."""
    from sdk import Bundle
    from sdk.engines import current_key, engines_of
    from sdk.export.engine_build import build_engine
    from sdk.export.engine_cpu import QualityError
    from sdk.export.engine_records import BatchProfile

    if backend == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise Skip("TensorRT is not installed here") from None
    if backend == "aoti" and device == "cpu" and precision in ("fp16", "tf32"):
        raise Skip(f"AOTInductor {precision} needs a GPU")
    if backend in CPU_ENGINE_BACKENDS:
        if not any(r.key == current_key(backend, precision) for r in engines_of(bundle, backend, precision)):
            try:
                build_engine(bundle.path, backend, precision=precision,
                             progress=lambda m: print(f"  [engine] {m}", flush=True))
            except QualityError as exc:
                raise Skip(str(exc)) from None
        return Bundle(bundle.path)
    if not engines_of(bundle, backend, precision):
        build_engine(bundle.path, backend, precision=precision,
                     batch=BatchProfile(min(batches), max(batches), max(batches)),
                     progress=lambda m: print(f"  [engine] {m}", flush=True))
    bundle = Bundle(bundle.path)
    record = next(iter(engines_of(bundle, backend, precision)), None)
    from sdk.backends.aoti import probe_failed

    if backend == "aoti" and record is not None and probe_failed(record):
        raise Skip(f"the AOTInductor package does not load in a fresh process ({probe_failed(record)})")
    return bundle


def make_callable(backend: str, bundle: Any, precision: str, batches: Sequence[int], device: str,
                  io: str = "host") -> Callable:
    if backend in REFERENCES:
        return _reference_callable(bundle, precision, device, REFERENCES[backend])
    from sdk import Bundle

    return _runner_callable(backend, Bundle(bundle.path), precision, batches, device, io)


# -- one model --------------------------------------------------------------------------
def seeded_feeds(spec: Any, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The graph's seeded example inputs as numpy feeds (class ids, edges, latents)."""
    return {s.name: x.numpy() for s, x in zip(spec.inputs, spec.examples(batch, seed=seed))}


def device_feeds(spec: Any, batch: int, device: str, seed: int = 0) -> dict[str, Any]:
    """The same inputs as tensors already on ``device``."""
    return {s.name: x.to(device) for s, x in zip(spec.inputs, spec.examples(batch, seed=seed))}


def _between_configurations(device: str) -> None:
    """Nothing of the last configuration stays alive: its objects, dynamo's compiled
    graphs and guards (and the CUDA-graph pools they hold), the CUDA cache."""
    gc.collect()
    torch._dynamo.reset()
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def torch_tf32(backend: str, device: str) -> bool | None:
    """Whether torch allowed TF32 (cuDNN or cuBLAS) for a torch row on GPU; None otherwise."""
    if device != "cuda" or not (backend in REFERENCES or backend in TORCH_BACKENDS or backend == "aoti"):
        return None
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def parity_figure(bundle: Any, precision: str, device: str, seed: int = 0) -> dict[str, Any]:
    """The torch runner's float image at ``precision`` against FP32 (TF32 off): relative L2
    and the largest 8-bit difference, eager, batch 1, block label maps."""
    from sdk.backends import make_runner

    ref = make_runner(bundle, "torch", device=device, precision="fp32", compile=False, cuda_graphs=False)
    feeds = {s.name: x.numpy() for s, x in zip(ref.spec.inputs, ref.spec.examples(1, seed=seed, layout="blocks"))}
    want = ref.run(feeds, outputs=["image", "image_u8"])
    ref.close()
    runner = make_runner(bundle, "torch", device=device, precision=precision, compile=False, cuda_graphs=False)
    got = runner.run(feeds, outputs=["image", "image_u8"])
    runner.close()
    a, b = got["image"].astype(np.float64), want["image"].astype(np.float64)
    return {"model": bundle.name, "precision": precision, "against": "fp32 (TF32 off)", "device": describe_device(device),
            "how": "torch runner, eager, batch 1, block label maps (seed 0)",
            "relative_l2": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)),
            "u8_max_levels": int(np.abs(got["image_u8"].astype(int) - want["image_u8"].astype(int)).max()),
            "finite": bool(np.isfinite(got["image"]).all())}


def configurations(args: argparse.Namespace, device: str) -> list[tuple[str, str, str]]:
    """(backend, precision, io) to measure: each reference row in its own kind (if ``--io``
    has it); the torch runner in every kind of ``--io`` (default: both on GPU, host on CPU);
    every other backend end to end."""
    kinds = args.io or (["host", "device"] if device == "cuda" else ["host"])
    out = []
    for backend in args.backends:
        for precision in args.precision:
            if backend in REFERENCES:
                ios = [REFERENCES[backend]] if REFERENCES[backend] in kinds else []
            elif backend in TORCH_BACKENDS:
                ios = kinds
            else:
                ios = ["host"]
            out += [(backend, precision, io) for io in ios]
    return out


@dataclass
class ModelFacts:
    """One preset at one size as its configurations are measured: its bundle, graph spec and counts."""

    name: str
    bundle: Any
    spec: Any
    height: int
    width: int
    reduced: bool
    params: int
    flops1: float  # FLOPs of one image
    io_elems: int  # elements of one image's inputs and outputs


@dataclass
class Built:
    """A configuration's callable and the memory counters read just before it was built."""

    fn: Callable
    mem0: int
    alloc0: int = 0
    free0: int = 0


def model_bundle(name: str, overrides: dict[str, Any], onnx: bool, device: str, bundles: Path) -> Path:
    """The run's bundle of ``name`` at this size: exported once into ``bundles`` (the trained
    demo bundle copied for the demo preset at full size)."""
    from sdk.export.bundle import build_bundle
    from sdk.train.models import get_preset

    preset = get_preset(name)
    size = "x".join(str(overrides.get(k, getattr(preset.config, k))) for k in ("height", "width"))
    path = bundles / f"{name}-{size}"
    if not (path / "manifest.json").is_file():
        if name == DEMO_PRESET and not overrides and onnx and (DEMO_BUNDLE / "manifest.json").is_file():
            print(f"[latency] copying the trained demo bundle {DEMO_BUNDLE} to {path}", flush=True)
            shutil.copytree(DEMO_BUNDLE, path)  # the bundle the README's first command runs
        else:
            print(f"[latency] exporting {name} at {size} to {path}", flush=True)
            build_bundle(name, path, overrides=overrides, onnx=onnx, calibration_device=device)
    return path


def model_facts(name: str, overrides: dict[str, Any], reduced: bool, bundle: Any) -> ModelFacts:
    """Parameters and FLOPs of the synthesis graph (built on the meta device), its size and I/O."""
    from sdk.train.models import get_preset
    from sdk.train.models.flops import count_params, graph_flops

    with torch.device("meta"):
        model = get_preset(name).build(**overrides)
        spec = model.graphs()["model"]
        params = count_params(spec.module)
    h, w = bundle.resolution
    flops1 = graph_flops(name, batch=1, **overrides)
    io_elems = sum(int(np.prod([d for d in s.shape[1:]])) for s in
                   (*bundle.graph("model").inputs, *bundle.graph("model").outputs))
    return ModelFacts(name, bundle, spec, h, w, reduced, params, flops1, io_elems)


def parity_row(bundle: Any, name: str, precision: str, device: str) -> dict[str, Any]:
    """:func:`parity_figure`, or the reason it could not be taken, printed."""
    _between_configurations(device)
    try:
        figure = parity_figure(bundle, precision, device)
        print(f"[latency] {name} parity {precision} vs fp32: relative L2 {figure['relative_l2']:.2e}, "
              f"8-bit max {figure['u8_max_levels']} levels", flush=True)
    except Exception as exc:  # a figure that cannot be taken says why; the timings go on
        figure = {"model": name, "precision": precision, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(f"[latency] {name} parity {precision}: {figure['error']}", flush=True)
    return figure


def build_callable(facts: ModelFacts, backend: str, precision: str, io: str, batches: Sequence[int],
                   device: str) -> Built:
    """The configuration's callable, with the memory counters read before it is built."""
    mem0 = _rss_bytes()
    alloc0 = free0 = 0
    if device == "cuda":
        alloc0 = torch.cuda.memory_allocated()
        free0 = torch.cuda.mem_get_info()[0]
    return Built(make_callable(backend, facts.bundle, precision, batches, device, io), mem0, alloc0, free0)


def time_configuration(built: Built, spec: Any, batch: int, io: str, runs: int, warmup: int,
                       device: str) -> tuple[list[float], int]:
    """``warmup`` then ``runs`` timed calls at ``batch``; returns the times (ms) and the peak
    memory growth (bytes) sampled after every call."""
    feeds = device_feeds(spec, batch, device) if io == "device" else seeded_feeds(spec, batch)
    peak = [0]

    def sample() -> None:
        if device == "cuda":
            peak[0] = max(peak[0], built.free0 - torch.cuda.mem_get_info()[0])
        else:
            peak[0] = max(peak[0], _rss_bytes() - built.mem0)

    def after_warmup() -> None:  # compile, autotuning and cuDNN trials are not the run's memory
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    times = time_calls(lambda: built.fn(feeds), runs, warmup, device == "cuda", sample, after_warmup)
    return times, peak[0]


def fill_timing(rec: Record, times: list[float], warmup: int, device: str) -> None:
    """The record's latency figures from the timed calls."""
    rec.runs, rec.warmup = len(times), warmup
    rec.timer = "cuda_events" if device == "cuda" else "perf_counter"
    rec.median_ms = statistics.median(times)
    rec.p90_ms = percentile(times, 90)
    rec.mean_ms = statistics.fmean(times)
    rec.noisy = rec.p90_ms > NOISY_P90_OVER_MEDIAN * rec.median_ms
    rec.images_per_s = rec.batch / rec.median_ms * 1e3


def fill_memory(rec: Record, peak: int, built: Built, device: str) -> None:
    """The record's peak memory and how it was taken."""
    if device == "cuda":
        rec.peak_memory_mb = (torch.cuda.max_memory_allocated() - built.alloc0) / 2**20
        rec.device_used_mb = peak / 2**20
        rec.memory_method = ("torch.cuda.max_memory_allocated over the timed calls (reset after warm-up) "
                             "less the memory allocated before the configuration; device_used_mb: "
                             "cudaMemGetInfo delta")
    else:
        rec.peak_memory_mb = peak / 2**20
        rec.memory_method = "RSS growth (/proc/self/statm, sampled per call) from before the runner"


def fill_roofline(rec: Record, facts: ModelFacts, ceilings: GPUSpec | None) -> None:
    """The record's roofline floor and efficiency (GPU: measured ceilings; CPU: none)."""
    if ceilings is not None:
        nbytes = min_bytes(facts.params, facts.io_elems * rec.batch, rec.precision)
        rec.roofline_floor_ms = roofline_floor_ms(facts.flops1 * rec.batch, nbytes, ceilings, rec.precision)
        rec.efficiency = rec.roofline_floor_ms / rec.median_ms
        rec.roofline_note = (f"{ceilings.name}: max(FLOPs / {ceilings.peak_flops(rec.precision) / 1e12:.0f} "
                             f"TFLOP/s, bytes / {ceilings.bandwidth_gbs:.0f} GB/s)")
    else:
        rec.roofline_note = "CPU: skipped (peak FLOP/s of this CPU unknown)"


def bench_configuration(facts: ModelFacts, backend: str, precision: str, io: str, args: argparse.Namespace,
                        device: str, results: "Results") -> None:
    """Every batch size of one (backend, precision, io): a record each, or one saying why not."""
    built: Built | None = None
    for batch in args.batch:
        rec = Record(facts.name, backend, precision, batch, facts.height, facts.width, facts.reduced,
                     describe_device(device), io=io, params=facts.params, gflops_per_image=facts.flops1 / 1e9,
                     gflops_per_batch=facts.flops1 * batch / 1e9)
        try:
            if backend in REFERENCES and built is not None:  # one compile per batch size
                built = None
                _between_configurations(device)
            if built is None:  # memory is counted from before the callable is built
                built = build_callable(facts, backend, precision, io, args.batch, device)
            rec.tf32 = torch_tf32(backend, device)
            rec.extra.update(getattr(built.fn, "extra", None) or {})
            times, peak = time_configuration(built, facts.spec, batch, io, args.runs, args.warmup, device)
        except Skip as exc:
            rec.status = f"skipped: {exc}"
        except Exception as exc:  # report and go on with the other configurations
            rec.status = f"error: {type(exc).__name__}: {str(exc)[:300]}"
        if rec.status != "ok":
            results.add(rec)
            print(f"[latency] {facts.name} {backend} {precision} {io} b{batch}: {rec.status}", flush=True)
            break
        fill_timing(rec, times, args.warmup, device)
        fill_memory(rec, peak, built, device)
        fill_roofline(rec, facts, results.ceilings)
        results.add(rec)
        print(f"[latency] {facts.name} {backend} {precision} {io} b{batch} {facts.height}x{facts.width}: median "
              f"{rec.median_ms:.2f} ms, p90 {rec.p90_ms:.2f} ms, {rec.images_per_s:.1f} img/s", flush=True)


def bench_model(name: str, overrides: dict[str, Any], reduced: bool, args: argparse.Namespace, device: str,
                bundles: Path, results: "Results") -> None:
    """Every configuration of one preset at one size; each record goes to ``results`` (and
    to disk) as soon as it is measured."""
    from sdk import Bundle

    path = model_bundle(name, overrides, args.onnx, device, bundles)
    facts = model_facts(name, overrides, reduced, Bundle(path))
    for precision in args.parity:
        results.add_parity(parity_row(facts.bundle, name, precision, device))
    for backend, precision, io in configurations(args, device):
        _between_configurations(device)
        bench_configuration(facts, backend, precision, io, args, device, results)
    _between_configurations(device)
    if device == "cpu" and set(args.backends) & set(CPU_ENGINE_BACKENDS):
        results.add_pick(name, facts.height, facts.width, auto_pick(Bundle(path)))


def auto_pick(bundle: Any) -> str:
    """What ``backend="auto"`` runs on this bundle here (``sdk.engines.fastest_cpu_engine``),
    as ``"backend precision"`` (``"onnxruntime fp32"`` when no engine qualifies)."""
    from sdk.engines import fastest_cpu_engine

    record = fastest_cpu_engine(bundle)
    return "onnxruntime fp32" if record is None else f"{record.backend} {record.precision}"


def describe_device(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    from sdk.engines import cpu_device, read_cpuinfo

    name = read_cpuinfo().get("model name") or platform.processor() or "unknown"
    return f"cpu {platform.machine()} ({name}; {cpu_device()}), {torch.get_num_threads()} threads"


# -- report -----------------------------------------------------------------------------
def add_speedups(records: list[Record]) -> None:
    """Fill ``speedup_vs_eager_fp32`` (torch-eager FP32, host I/O), ``speedup_vs_reference``
    (the reference of the row's own kind: ``reference-host`` for end-to-end rows,
    ``reference-device`` for device-resident ones, at the row's precision; none for the
    references themselves) and ``speedup_vs_onnxruntime_fp32``, all of the same run,
    model, size and batch."""
    def key(r: Record) -> tuple:
        return r.model, r.height, r.width, r.batch

    eager = {key(r): r.median_ms for r in records
             if r.backend == "torch-eager" and r.precision == "fp32" and r.io == "host" and r.median_ms}
    reference = {(key(r), r.io, r.precision): r.median_ms for r in records if r.backend in REFERENCES and r.median_ms}
    ort = {key(r): r.median_ms for r in records
           if r.backend == "onnxruntime" and r.precision == "fp32" and r.io == "host" and r.median_ms}
    for r in records:
        r.speedup_vs_onnxruntime_fp32 = r.speedup_vs_eager_fp32 = r.speedup_vs_reference = None
        if not r.median_ms:
            continue
        if key(r) in ort:
            r.speedup_vs_onnxruntime_fp32 = ort[key(r)] / r.median_ms
        if key(r) in eager:
            r.speedup_vs_eager_fp32 = eager[key(r)] / r.median_ms
        ref = reference.get((key(r), r.io, r.precision))
        if ref and r.backend not in REFERENCES:
            r.speedup_vs_reference = ref / r.median_ms


class Results:
    """The records of a run, written to ``out`` (``results.json`` and ``results.md``,
    atomically) after every record: a run killed half way keeps what it finished.

    ``append``: the records (and parity figures) already in ``out/results.json`` are kept,
    so several processes (one per preset) make one run."""

    def __init__(self, out: Path, header: dict[str, Any], append: bool = False,
                 ceilings: GPUSpec | None = None) -> None:
        self.out = out
        self.records: list[Record] = []
        self.parity: list[dict[str, Any]] = []
        self.header = dict(header)
        self.ceilings = ceilings
        old = out / "results.json"
        if append and old.is_file():
            data = json.loads(old.read_text())
            self.records = [Record(**r) for r in data.get("records", [])]
            self.parity = list(data.get("parity", []))
            self.header = {**{k: v for k, v in data.items() if k not in ("records", "parity")}, **self.header}
        if ceilings is not None:
            self.header["roofline_ceilings"] = asdict(ceilings)
        self.write()

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.write()

    def add_pick(self, model: str, height: int, width: int, pick: str) -> None:
        """Record what ``auto`` runs for ``model`` at this size (the run's bundle, its engines)."""
        self.header.setdefault("auto_picks", {})[f"{model} {height}x{width}"] = pick
        self.write()

    def add_parity(self, figure: dict[str, Any]) -> None:
        self.parity.append(figure)
        self.write()

    def write(self) -> None:
        add_speedups(self.records)
        data = {**self.header, "parity": self.parity, "records": [asdict(r) for r in self.records]}
        write_bytes_atomic(self.out / "results.json", (json.dumps(data, indent=2) + "\n").encode())
        write_markdown(self.records, self.out / "results.md", bool(self.header.get("quick")), self.parity)


def write_markdown(records: list[Record], path: Path, quick: bool,
                   parity: Sequence[dict[str, Any]] = ()) -> None:
    lines = ["# Latency", ""]
    if quick:
        lines += ["**Quick run: reduced sizes** (each preset at its CI size, `Preset.test_overrides`); "
                  "these figures are a smoke test, not the models' latency.", ""]
    lines += ["Median / p90 of one call after warm-up. I/O `host` (end to end): class ids from host numpy in, "
              "the 8-bit image to host numpy out. `device` (device-resident): ids already on the device in, the "
              "image left there, input checks off. `reference-host`: the official test path end to end (host ids "
              "uploaded, float one-hot made on the device, network, float image downloaded, 8 bits on the host); "
              "`reference-device`: ids already on the device, float one-hot made there, network, float image left "
              "there; both the same network at the row's precision, channels-last and "
              "`torch.compile(mode=\"reduce-overhead\", dynamic=False)` on GPU, compiled per batch size. "
              "`x reference`: over the reference of the same I/O and precision (host rows over reference-host, "
              "device rows over reference-device). `tf32`: whether torch allowed TF32 for the row (GPU torch rows). "
              f"`noisy`: p90 > {NOISY_P90_OVER_MEDIAN:g} x median. GFLOPs: FlopCounterMode, conv + matmul, "
              "MAC = 2 FLOPs. Roofline floor and efficiency: from ceilings measured in the same process (GEMM, "
              "device copy), GPU only.", "",
              "| model | HxW | backend | precision | tf32 | I/O | batch | median ms | p90 ms | img/s | "
              "x reference | x eager FP32 | peak MB | params (M) | GFLOPs/img | floor ms | efficiency | status |",
              "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in records:
        status = r.status + (" (noisy)" if r.noisy else "")
        lines.append(f"| {r.model} | {r.height}x{r.width}{' (reduced)' if r.reduced_size else ''} | {r.backend} | "
                     f"{r.precision} | {'-' if r.tf32 is None else 'on' if r.tf32 else 'off'} | {r.io} | {r.batch} | "
                     f"{f(r.median_ms, '.2f')} | {f(r.p90_ms, '.2f')} | "
                     f"{f(r.images_per_s, '.1f')} | {f(r.speedup_vs_reference, '.2f')} | "
                     f"{f(r.speedup_vs_eager_fp32, '.2f')} | {f(r.peak_memory_mb, '.1f')} | "
                     f"{f(None if r.params is None else r.params / 1e6, '.2f')} | {f(r.gflops_per_image, '.4g')} | "
                     f"{f(r.roofline_floor_ms, '.3f')} | {f(r.efficiency, '.1%')} | {status} |")
    methods = sorted({r.memory_method for r in records if r.memory_method})
    lines += ["", "Peak memory: " + "; ".join(methods) if methods else "", ""]
    if parity:
        lines += ["## Parity of the torch runner against FP32", "",
                  "| model | precision | relative L2 | 8-bit max levels | how |", "|---|---|---:|---:|---|"]
        for p in parity:
            if "error" in p:
                lines.append(f"| {p['model']} | {p['precision']} | - | - | error: {p['error']} |")
            else:
                lines.append(f"| {p['model']} | {p['precision']} | {p['relative_l2']:.2e} | {p['u8_max_levels']} | "
                             f"{p['how']}, against {p['against']}, {p['device']} |")
        lines.append("")
    write_bytes_atomic(path, "\n".join(lines).encode())


def write_claims(records: list[dict[str, Any]], out: Path) -> None:
    """The papers' efficiency claims next to our counts and this run's measurements."""
    from sdk.benchmarks.report import compare, load_claims, to_markdown

    rows = compare(load_claims(), records)
    (out / "claims.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "claims.md").write_text(to_markdown(rows))


def plot(records: list[Record], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if r.median_ms is not None:
            series.setdefault(f"{r.model} {r.height}x{r.width} {r.backend} {r.precision}", []).append(
                (r.batch, r.median_ms))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("batch")
    ax.set_ylabel("median latency (ms)")
    ax.set_title("latency vs batch per backend")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- CLI --------------------------------------------------------------------------------
def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    from sdk import __version__

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"sdk {__version__} (benchmarks/latency.py)")
    p.add_argument("--models", type=_csv,
                   help=f"registry names or 'all' (default {','.join(DEFAULT_MODELS)}; --quick: {','.join(QUICK_MODELS)})")
    p.add_argument("--backends", type=_csv, help=f"subset of {','.join(BACKENDS)} (default all)")
    p.add_argument("--precision", type=_csv, help="fp32,tf32,fp16,bf16 (default fp32,fp16 on GPU, fp32 on CPU)")
    p.add_argument("--batch", type=lambda s: [int(x) for x in _csv(s)], help="batch sizes (default 1,4,8)")
    p.add_argument("--resolution", type=_csv, default=[], help="HxW overrides, e.g. 256x256,512x512 (default: preset's)")
    p.add_argument("--runs", type=int, default=50, help="timed calls per configuration (>= 50)")
    p.add_argument("--warmup", type=int, default=None, help="calls before timing (default 10; 3 on CPU at full size)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", default="runs/latency", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="CPU, torch-eager + onnxruntime, FP32, batch 1,2, CI sizes (reduced): under a minute")
    p.add_argument("--no-onnx", dest="onnx", action="store_false",
                   help="export bundles without ONNX graphs (torch backends only; saves minutes per full-size "
                        "preset on a GPU machine)")
    p.add_argument("--io", type=_csv, help="kinds of rows: host (end to end), device (device-resident); "
                                            "default both on GPU, host on CPU")
    p.add_argument("--bundles", help="folder for the exported bundles (default OUT/bundles)")
    p.add_argument("--append", action="store_true",
                   help="keep the records already in OUT/results.json (one run over several processes); "
                        "writes results.json and results.md only")
    p.add_argument("--parity", type=_csv, default=[],
                   help="half precisions (fp16,bf16) whose torch-runner image to compare with FP32, once per preset")
    return p


def check_options(args: argparse.Namespace) -> str | None:
    """What stops the run before it is planned (torch missing, too few runs), or None."""
    if torch is None:
        return 'error: the benchmark needs torch (not installed here): pip install -e ".[torch]"'
    if args.runs < 50:
        return "--runs must be >= 50"
    return None


def plan_run(args: argparse.Namespace) -> str:
    """Fill the options left out with the defaults of the run's kind (``--quick``, CPU at
    full size, GPU); returns the device."""
    from sdk.train.models import list_models

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" or args.quick else device
    cpu_full = device == "cpu" and not args.quick  # the CPU engines side by side (module docstring)
    args.models = args.models or list(QUICK_MODELS if args.quick else CPU_MODELS if cpu_full else DEFAULT_MODELS)
    if args.models == ["all"]:
        args.models = list_models()
    # CPU: onnxruntime-int8 before openvino, whose INT8 build then reuses its calibrated graph
    args.backends = args.backends or (["torch-eager", "onnxruntime"] if args.quick else
                                      ["onnxruntime", "onnxruntime-int8", "openvino"] if cpu_full else list(BACKENDS))
    args.precision = args.precision or (["fp32"] if args.quick else ["fp32", "bf16", "int8"] if cpu_full
                                        else ["fp32", "fp16"])
    args.batch = args.batch or ([1, 2] if args.quick else [1] if cpu_full else [1, 4, 8])
    args.warmup = args.warmup if args.warmup is not None else 3 if cpu_full else 10
    return device


def unknown_choices(args: argparse.Namespace) -> str | None:
    """The first backend, model, ``--io`` or ``--parity`` value that does not exist, as a message; or None."""
    from sdk.train.models import list_models

    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        return f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}"
    unknown = sorted(set(args.models) - set(list_models()))
    if unknown:
        return f"unknown models {unknown}; see python -m export list"
    unknown = sorted(set(args.io or []) - {"host", "device"})
    if unknown:
        return f"--io takes host and device, not {unknown}"
    unknown = sorted(set(args.parity) - {"fp16", "bf16"})
    if unknown:
        return f"--parity takes fp16 and bf16, not {unknown}"
    return None


def start_results(args: argparse.Namespace, device: str, out: Path) -> Results:
    """The run's :class:`Results` in ``out`` (GPU: with the roofline's ceilings, measured here and now)."""
    ceilings = None
    if device == "cuda":
        wanted = ["fp16", "bf16"] + [p for p in args.precision if p in ("fp32", "tf32")]
        ceilings = measure_ceilings(torch.cuda.get_device_name(), wanted)
        print(f"[latency] measured ceilings: {ceilings}", flush=True)
    return Results(out, {"quick": args.quick, "reduced_sizes": args.quick, "device": describe_device(device),
                         "torch": torch.__version__,
                         "gflops": "FlopCounterMode, conv + matmul (+ attention), MAC = 2 FLOPs"},
                   append=args.append, ceilings=ceilings)


def model_sizes(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The size overrides ``name`` is measured at: its CI size (``--quick``), each ``--resolution``, or its own."""
    from sdk.train.models import get_preset

    if args.quick:
        return [dict(get_preset(name).test_overrides)]
    sizes: list[dict[str, Any]] = []
    for res in args.resolution:
        hh, ww = (int(v) for v in res.lower().split("x"))
        sizes.append({"height": hh, "width": ww})
    return sizes or [{}]


def write_reports(results: Results, args: argparse.Namespace, device: str, out: Path) -> None:
    """``SUMMARY.md`` (runs with CPU engines), ``latency.png`` and the claims beside ``results.json``."""
    records = results.records
    if any(r.backend in CPU_ENGINE_BACKENDS for r in records):
        from sdk.benchmarks.report import cpu_summary

        summary = {**results.header, "device": describe_device(device), "records": [asdict(r) for r in records]}
        (out / "SUMMARY.md").write_text(cpu_summary(summary, args.quick))
    plot(records, out / "latency.png")
    write_claims([asdict(r) for r in records], out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = check_options(args)
    device = "" if problem else plan_run(args)
    problem = problem or unknown_choices(args)
    if problem:
        print(f"[latency] {problem}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundles = Path(args.bundles) if args.bundles else out / "bundles"
    results = start_results(args, device, out)
    for name in args.models:
        for overrides in model_sizes(name, args):
            bench_model(name, overrides, args.quick, args, device, bundles, results)
    if args.append:
        print(f"[latency] wrote {out / 'results.json'}, {out / 'results.md'}")
        return 0
    write_reports(results, args, device, out)
    print(f"[latency] wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'latency.png'}, "
          f"{out / 'claims.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
