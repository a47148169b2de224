"""Latency benchmark: models x backends x precision x batch x resolution.

    python benchmarks/latency.py --models spade-ade20k,oasis-ade20k --batch 1,4,8 --out runs/latency
    python benchmarks/latency.py --quick --out /tmp/lat     # CPU smoke run, reduced sizes, < 1 min

What is measured, per configuration (one record each in ``results.json``):

* latency of one call from host numpy arrays to host numpy arrays (the SDK's
  ``Runner.run`` path: host<->device copies included, for every backend alike); median
  and p90 over ``--runs`` (>= 50) calls after ``--warmup`` calls. GPU: CUDA events around
  each call; CPU: ``time.perf_counter``.
* images/s = batch / median latency.
* peak memory. GPU: ``torch.cuda.max_memory_allocated`` for the torch / aoti backends
  (reset before the runner is built); device memory taken from ``cudaMemGetInfo``
  (``torch.cuda.mem_get_info``) for onnxruntime / tensorrt, whose allocators torch does not
  see. CPU: growth of the resident set size (``/proc/self/statm``, sampled after every
  call) over its value before the runner was built; no tracemalloc (it misses native
  allocations and slows the run).
* parameters of the synthesis graph; GFLOPs from ``sdk.train.models.flops.graph_flops``
  (``FlopCounterMode``: convolutions and matmuls, one multiply-accumulate = 2 FLOPs).
* the roofline floor of the detected GPU (``benchmarks.roofline``) and efficiency =
  floor / measured median. CPU: no roofline (fields are null).

Backends: ``torch-eager``, ``torch-compiled`` (``torch.compile``), ``aoti`` (a package built
into the run's bundle with ``export.engine_build``), ``onnxruntime`` (the bundle's FP32
ONNX graph; other precisions are skipped), ``tensorrt`` (skipped with the reason when
TensorRT is not installed), ``openvino`` (FP32 / BF16 / INT8) and ``onnxruntime-int8``
(CPU engines built into the run's bundle by ``export.engine_build``, through the SDK's
runners; an engine below its quality bar is skipped with its figure; each record's
``extra`` carries the engine's quality against the FP32 graph).

``--device cpu`` without ``--quick``: the CPU engines side by side at full size, batch 1,
3 warm-up calls: onnxruntime FP32, OpenVINO FP32 / BF16 / INT8 and onnxruntime INT8 for
the presets of the CPU targets (``CPU_MODELS``; the demo preset is the trained bundle
``demo/spade-street`` itself), plus ``SUMMARY.md``: the CPU table and which targets are
met (``benchmarks.report.cpu_summary``). Random weights with calibrated normalisation statistics:
latency does not depend on the weights' values.

``--quick``: CPU, torch-eager + onnxruntime, FP32, batch 1 and 2, each preset at its CI
size (``Preset.test_overrides``), 50 runs; the report marks these sizes as reduced.
Its default model (progan-64) keeps it under a minute; ``--quick --models all`` measures
every preset (about 15 minutes on 2 cores, most of it exporting).

Output in ``--out``: ``results.json`` (one record per measurement), ``results.md`` (the
table, with each backend's speed-up over torch-eager FP32 of the same run), ``latency.png``
(latency vs batch per backend) and ``claims.md`` / ``claims.json`` (the papers' efficiency
claims next to our counts, ``benchmarks/report.py``).
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

from sdk.benchmarks.roofline import lookup_gpu, min_bytes, roofline_floor_ms
from sdk.engines import BACKEND_PRECISIONS, CPU_ENGINE_BACKENDS

BACKENDS = ("reference", "torch-eager", "torch-compiled", "aoti", "onnxruntime", "tensorrt", "openvino",
            "onnxruntime-int8")
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
    speedup_vs_reference: float | None = None  # reference median / this median, same model, size, batch
    speedup_vs_onnxruntime_fp32: float | None = None  # onnxruntime FP32 median / this median (CPU engines)
    io: str = "host"  # "host": numpy in and out (end to end); "device": tensors on the device
    tf32: bool | None = None  # FP32 rows: whether TF32 tensor cores were allowed (None: n/a)
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
               after_each: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
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


def _reference_callable(bundle: Any, precision: str, device: str) -> Callable[[dict], Any]:
    """How people run the official code: the same network in torch, the float one-hot
    label (and float edge map) already on the device, output left there; on GPU FP16 (or
    the asked precision), channels-last and ``torch.compile(mode="reduce-overhead")``
    (CUDA graphs). Feeds: the one-hot tensors from :func:`reference_feeds`."""
    from sdk.train.deploy.precision import ReducedPrecision
    from sdk.train.deploy.runner import build_model

    if device == "cpu" and precision in ("fp16", "tf32"):
        raise Skip(f"torch {precision} is a GPU precision")
    spec = build_model(bundle).graphs()["model"]
    module = spec.module.to(device).eval()
    if precision in ("fp16", "bf16"):
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        module = ReducedPrecision(module, dtype, channels_last=device == "cuda").eval()
    elif device == "cuda":
        module = module.to(memory_format=torch.channels_last)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.benchmark = True
    module = torch.compile(module, mode="reduce-overhead" if device == "cuda" else None)
    names = [s.name for s in spec.inputs]

    def run(feeds: dict) -> Any:
        with torch.inference_mode():
            return module(*[feeds[n] for n in names])

    return run


def _runner_callable(backend: str, bundle: Any, precision: str, batches: Sequence[int], device: str,
                     io: str) -> Callable[[dict], Any]:
    """One of the SDK's runners, called as the Synthesizer calls it: class ids in, the 8-bit
    image out (``io="host"``: numpy both ways; ``"device"``: CUDA tensors both ways)."""
    from sdk.backends import make_runner

    options: dict[str, Any] = {}
    if backend in ("torch-eager", "torch-compiled"):
        if device == "cpu" and precision in ("fp16", "tf32"):
            raise Skip(f"torch {precision} is a GPU precision")
        compiled = backend == "torch-compiled"
        options = dict(device=device, precision=precision, compile=compiled, cuda_graphs=compiled,
                       output="tensor" if io == "device" else "numpy")
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
        _build_engine(bundle, backend, precision, batches, device)
        options, name = {"precision": precision}, backend
    elif backend in CPU_ENGINE_BACKENDS:
        if device != "cpu" or io == "device":
            raise Skip(f"{backend} is a CPU engine (host arrays)")
        if precision not in BACKEND_PRECISIONS[backend]:
            raise Skip(f"{backend} builds {', '.join(BACKEND_PRECISIONS[backend])} engines")
        _build_engine(bundle, backend, precision, batches, device)
        options, name = {"precision": precision}, backend
        bundle = type(bundle)(bundle.path)  # the manifest as the build rewrote it
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    runner = make_runner(bundle, name, **options)
    wanted = [o["name"] for o in bundle.graph("model")["outputs"] if o["kind"] == "image_u8"][:1] or None

    def call(feeds: dict) -> Any:
        return runner.run(feeds, outputs=wanted)
    record = getattr(runner, "record", None)
    facts = cpu_engine_facts(record) if record and name in CPU_ENGINE_BACKENDS else {}
    call.extra = facts  # type: ignore[attr-defined]
    return call


def cpu_engine_facts(record: dict[str, Any]) -> dict[str, Any]:
    """What a CPU engine's record says about it, for the latency record's ``extra``."""
    quality = record.get("quality") or {}
    return {"engine_key": record["key"], "quality_vs_fp32": quality.get("model"),
            "quality_bar_psnr_db": quality.get("bar_psnr_db"), "renderer": quality.get("renderer"),
            "build_speed": record.get("speed"), "kept_float": (record.get("notes") or {}).get("quantization", {}).get(
                "kept_float")}


def _build_engine(bundle: Any, backend: str, precision: str, batches: Sequence[int], device: str) -> None:
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
        if not any(r["key"] == current_key(backend, precision) for r in engines_of(bundle, backend, precision)):
            try:
                build_engine(bundle.path, backend, precision=precision,
                             progress=lambda m: print(f"  [engine] {m}", flush=True))
            except QualityError as exc:
                raise Skip(str(exc)) from None
        return
    if not engines_of(bundle, backend, precision):
        build_engine(bundle.path, backend, precision=precision,
                     batch=BatchProfile(min(batches), max(batches), max(batches)),
                     progress=lambda m: print(f"  [engine] {m}", flush=True))
    from sdk import Bundle

    record = next(iter(engines_of(Bundle(bundle.path), backend, precision)), None)
    from sdk.backends.aoti import probe_failed

    if backend == "aoti" and record is not None and probe_failed(record):
        raise Skip(f"the AOTInductor package does not load in a fresh process ({probe_failed(record)})")


def make_callable(backend: str, bundle: Any, precision: str, batches: Sequence[int], device: str,
                  io: str = "host") -> Callable:
    if backend == "reference":
        if io != "device":
            raise Skip("the reference runs device-resident only (one-hot already on the device)")
        return _reference_callable(bundle, precision, device)
    from sdk import Bundle

    return _runner_callable(backend, Bundle(bundle.path), precision, batches, device, io)


# -- one model --------------------------------------------------------------------------
def seeded_feeds(spec: Any, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The graph's seeded example inputs as numpy feeds (class ids, edges, latents)."""
    return {s.name: x.numpy() for s, x in zip(spec.inputs, spec.examples(batch, seed=seed))}


def device_feeds(spec: Any, batch: int, device: str, seed: int = 0) -> dict[str, Any]:
    """The same inputs as tensors already on ``device``."""
    return {s.name: x.to(device) for s, x in zip(spec.inputs, spec.examples(batch, seed=seed))}


def reference_feeds(spec: Any, batch: int, device: str, seed: int = 0) -> dict[str, Any]:
    """The same inputs as the official code takes them, on ``device``: float one-hot labels."""
    examples = spec.examples(batch, seed=seed)
    return {s.name: x.to(device) for s, x in zip(spec.inputs, spec.as_one_hot(examples))}


def _free_device_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def configurations(args: argparse.Namespace, device: str) -> list[tuple[str, str, str]]:
    """(backend, precision, io) to measure; ``io`` "device" only where it means something."""
    out = []
    for backend in args.backends:
        for precision in args.precision:
            ios = ["device"] if backend == "reference" else ["host"]
            if device == "cuda" and backend in ("torch-eager", "torch-compiled"):
                ios.append("device")
            out += [(backend, precision, io) for io in ios]
    return out


def bench_model(name: str, overrides: dict[str, Any], reduced: bool, args: argparse.Namespace, device: str,
                workdir: Path) -> list[Record]:
    from sdk import Bundle
    from sdk.export.bundle import build_bundle
    from sdk.train.models import get_preset
    from sdk.train.models.flops import count_params, graph_flops

    preset = get_preset(name)
    size = "x".join(str(overrides.get(k, getattr(preset.config, k))) for k in ("height", "width"))
    path = workdir / "bundles" / f"{name}-{size}"
    if not (path / "manifest.json").is_file():
        if name == DEMO_PRESET and not overrides and args.onnx and (DEMO_BUNDLE / "manifest.json").is_file():
            print(f"[latency] copying the trained demo bundle {DEMO_BUNDLE} to {path}", flush=True)
            shutil.copytree(DEMO_BUNDLE, path)  # the bundle the README's first command runs
        else:
            print(f"[latency] exporting {name} at {size} to {path}", flush=True)
            build_bundle(name, path, overrides=overrides, onnx=args.onnx)
    bundle = Bundle(path)
    with torch.device("meta"):
        model = preset.build(**overrides)
        spec = model.graphs()["model"]
        params = count_params(spec.module)
    h, w = bundle.resolution
    flops1 = graph_flops(name, batch=1, **overrides)
    gpu = lookup_gpu(torch.cuda.get_device_name()) if device == "cuda" else None
    io_elems = sum(int(np.prod([d for d in s["shape"][1:]])) for s in
                   (*bundle.graph("model")["inputs"], *bundle.graph("model")["outputs"]))
    records = []
    for backend, precision, io in configurations(args, device):
        _free_device_memory(device)
        fn = None
        for batch in args.batch:
            rec = Record(name, backend, precision, batch, h, w, reduced, describe_device(device), io=io,
                         tf32=None if device == "cpu" or precision in ("fp16", "bf16") else precision == "tf32",
                         params=params, gflops_per_image=flops1 / 1e9, gflops_per_batch=flops1 * batch / 1e9)
            try:
                if fn is None:  # memory is counted from before the runner is built
                    mem0 = _rss_bytes()
                    if device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                        alloc0 = torch.cuda.memory_allocated()
                        free0 = torch.cuda.mem_get_info()[0]
                    fn = make_callable(backend, bundle, precision, args.batch, device, io)
                rec.extra.update(getattr(fn, "extra", None) or {})
                if device == "cuda":  # allocator peak per batch, the weights included
                    torch.cuda.reset_peak_memory_stats()
                if backend == "reference":
                    feeds: dict[str, Any] = reference_feeds(spec, batch, device)
                elif io == "device":
                    feeds = device_feeds(spec, batch, device)
                else:
                    feeds = seeded_feeds(spec, batch)
                peak = [0]

                def sample() -> None:
                    if device == "cuda":
                        peak[0] = max(peak[0], free0 - torch.cuda.mem_get_info()[0])
                    else:
                        peak[0] = max(peak[0], _rss_bytes() - mem0)

                times = time_calls(lambda: fn(feeds), args.runs, args.warmup, device == "cuda", sample)
            except Skip as exc:
                rec.status = f"skipped: {exc}"
                records.append(rec)
                print(f"[latency] {name} {backend} {precision} {io} b{batch}: {rec.status}", flush=True)
                break
            except Exception as exc:  # report and go on with the other configurations
                rec.status = f"error: {type(exc).__name__}: {str(exc)[:300]}"
                records.append(rec)
                print(f"[latency] {name} {backend} {precision} {io} b{batch}: {rec.status}", flush=True)
                break
            rec.runs, rec.warmup = len(times), args.warmup
            rec.timer = "cuda_events" if device == "cuda" else "perf_counter"
            rec.median_ms = statistics.median(times)
            rec.p90_ms = percentile(times, 90)
            rec.mean_ms = statistics.fmean(times)
            rec.noisy = rec.p90_ms > NOISY_P90_OVER_MEDIAN * rec.median_ms
            rec.images_per_s = batch / rec.median_ms * 1e3
            if device == "cuda":
                rec.peak_memory_mb = (torch.cuda.max_memory_allocated() - alloc0) / 2**20
                rec.device_used_mb = peak[0] / 2**20
                rec.memory_method = ("torch.cuda.max_memory_allocated over the configuration's start "
                                     "(reset per configuration); device_used_mb: cudaMemGetInfo delta")
            else:
                rec.peak_memory_mb = peak[0] / 2**20
                rec.memory_method = "RSS growth (/proc/self/statm, sampled per call) from before the runner"
            if gpu is not None:
                nbytes = min_bytes(params, io_elems * batch, precision)
                rec.roofline_floor_ms = roofline_floor_ms(flops1 * batch, nbytes, gpu, precision)
                rec.efficiency = rec.roofline_floor_ms / rec.median_ms
                rec.roofline_note = f"{gpu.name}: max(FLOPs / {gpu.peak_flops(precision) / 1e12:g} TFLOP/s, " \
                                    f"bytes / {gpu.bandwidth_gbs:g} GB/s)"
            else:
                rec.roofline_note = ("CPU: skipped (peak FLOP/s of this CPU unknown)" if device == "cpu"
                                     else "GPU not in benchmarks.roofline.KNOWN_GPUS")
            records.append(rec)
            print(f"[latency] {name} {backend} {precision} {io} b{batch} {h}x{w}: median {rec.median_ms:.2f} ms, "
                  f"p90 {rec.p90_ms:.2f} ms, {rec.images_per_s:.1f} img/s", flush=True)
        fn = None
    _free_device_memory(device)
    return records


def describe_device(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    from sdk.engines import cpu_device, read_cpuinfo

    name = read_cpuinfo().get("model name") or platform.processor() or "unknown"
    return f"cpu {platform.machine()} ({name}; {cpu_device()}), {torch.get_num_threads()} threads"


# -- report -----------------------------------------------------------------------------
def add_speedups(records: list[Record]) -> None:
    """Fill ``speedup_vs_eager_fp32`` (torch-eager FP32, host I/O), ``speedup_vs_reference``
    (the reference row; FP16 where it ran at several precisions) and
    ``speedup_vs_onnxruntime_fp32`` of the same run, model, size and batch."""
    def key(r: Record) -> tuple:
        return r.model, r.height, r.width, r.batch

    eager = {key(r): r.median_ms for r in records
             if r.backend == "torch-eager" and r.precision == "fp32" and r.io == "host" and r.median_ms}
    reference: dict[tuple, float] = {}
    for r in sorted((r for r in records if r.backend == "reference" and r.median_ms),
                    key=lambda r: r.precision != "fp16"):
        reference.setdefault(key(r), r.median_ms)
    ort = {key(r): r.median_ms for r in records
           if r.backend == "onnxruntime" and r.precision == "fp32" and r.io == "host" and r.median_ms}
    for r in records:
        if r.median_ms and key(r) in ort:
            r.speedup_vs_onnxruntime_fp32 = ort[key(r)] / r.median_ms
        if r.median_ms and key(r) in eager:
            r.speedup_vs_eager_fp32 = eager[key(r)] / r.median_ms
        if r.median_ms and key(r) in reference:
            r.speedup_vs_reference = reference[key(r)] / r.median_ms


def write_markdown(records: list[Record], path: Path, quick: bool) -> None:
    lines = ["# Latency", ""]
    if quick:
        lines += ["**Quick run: reduced sizes** (each preset at its CI size, `Preset.test_overrides`); "
                  "these figures are a smoke test, not the models' latency.", ""]
    lines += ["Median / p90 of one call. I/O `host`: the SDK's path end to end, class ids from host numpy in, "
              "the 8-bit image to host numpy out. `device`: tensors already on the device, output left there. "
              "`reference`: the same network as people run the official code, float one-hot already on the "
              "device, `torch.compile(mode=\"reduce-overhead\")`, channels-last. FP32 rows on GPU: TF32 as the "
              "`tf32` column says (PyTorch's default allows it for cuDNN convolutions). `noisy`: p90 > "
              f"{NOISY_P90_OVER_MEDIAN:g} x median. GFLOPs: FlopCounterMode, conv + matmul, MAC = 2 FLOPs. "
              "Roofline floor and efficiency on known GPUs only.", "",
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
    path.write_text("\n".join(lines))


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if torch is None:
        print('[latency] error: the benchmark needs torch (not installed here): pip install -e ".[torch]"',
              file=sys.stderr)
        return 2
    if args.runs < 50:
        print("[latency] --runs must be >= 50", file=sys.stderr)
        return 2
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" or args.quick else device
    from sdk.train.models import get_preset, list_models

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
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        print(f"[latency] unknown backends {unknown}; choose from {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.models) - set(list_models()))
    if unknown:
        print(f"[latency] unknown models {unknown}; see python -m export list", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    for name in args.models:
        preset = get_preset(name)
        sizes: list[dict[str, Any]] = []
        if args.quick:
            sizes.append(dict(preset.test_overrides))
        elif args.resolution:
            for res in args.resolution:
                hh, ww = (int(v) for v in res.lower().split("x"))
                sizes.append({"height": hh, "width": ww})
        else:
            sizes.append({})
        for overrides in sizes:
            records += bench_model(name, overrides, args.quick, args, device, out)
    add_speedups(records)
    (out / "results.json").write_text(json.dumps({
        "quick": args.quick, "reduced_sizes": args.quick, "device": describe_device(device),
        "torch": torch.__version__, "gflops": "FlopCounterMode, conv + matmul (+ attention), MAC = 2 FLOPs",
        "records": [asdict(r) for r in records]}, indent=2) + "\n")
    write_markdown(records, out / "results.md", args.quick)
    if any(r.backend in CPU_ENGINE_BACKENDS for r in records):
        from sdk.benchmarks.report import cpu_summary

        (out / "SUMMARY.md").write_text(cpu_summary([asdict(r) for r in records], describe_device(device), args.quick))
    plot(records, out / "latency.png")
    write_claims([asdict(r) for r in records], out)
    print(f"[latency] wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'latency.png'}, "
          f"{out / 'claims.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
