"""Built engines in a bundle, as the runtime sees them: keys, matching and selection.

An engine (a TensorRT plan, an AOTInductor package, an OpenVINO IR, an INT8 ONNX graph)
only runs on the device and the runtime it was built for. It lives in ``engines/<key>/``
of the bundle, where the key names the backend, the precision, the device (GPU name +
compute capability, or the CPU: see :func:`cpu_device`) and the runtime versions::

    tensorrt-fp16-nvidia-h100-80gb-hbm3-sm90-trt10.3.0-cuda12.4
    aoti-fp32-cpu-x86_64-amd-epyc-avx512bf16-3f2a9c1e-torch2.13.0
    openvino-int8-cpu-x86_64-amd-epyc-avx512bf16-3f2a9c1e-openvino2026.4.1

CPU engines (``openvino``, ``onnxruntime-int8``) also carry their quality against the
bundle's FP32 graph on a held-out set of maps (the worst image's PSNR beside the mean,
gated at build on :data:`QUALITY_BARS_DB`) and their speed against onnxruntime FP32
measured when they were built: ``backend="auto"`` picks the fastest of them that beats
onnxruntime FP32 and whose worst image meets its bar (:func:`fastest_cpu_engine`).

The manifest's ``engines`` section maps each key to its record
(:class:`sdk.manifest.EngineRecord`, written by ``sdk.export.engine_records``, with batch
profiles, parity, quality and speed: build-time facts). A runner recomputes the key of this machine and refuses an
engine whose key differs, naming the ``python -m export engine`` command that
rebuilds it. Nothing here imports torch or TensorRT at module level.
"""
from __future__ import annotations

import hashlib
import platform
import re
from pathlib import Path
from typing import Any

from .bundle import Bundle
from .errors import BackendError
from .manifest import EngineRecord

CPU_ENGINE_BACKENDS = ("openvino", "onnxruntime-int8")
"""Engines built from the bundle's ONNX graph for this CPU, gated on quality at build."""
ENGINE_BACKENDS = ("tensorrt", "aoti", *CPU_ENGINE_BACKENDS)
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")
BACKEND_PRECISIONS = {"tensorrt": ("fp32", "tf32", "fp16", "bf16"), "aoti": ("fp32", "tf32", "fp16", "bf16"),
                      "openvino": ("fp32", "bf16", "int8"), "onnxruntime-int8": ("int8",)}
AUTO_MIN_SPEEDUP = 1.25
"""The speed-up over onnxruntime FP32 (measured at build) a CPU engine needs for ``auto`` to
run it: a margin over the build's timing noise (a few seconds of calls in ABBA blocks on a
shared machine; the same engine measured 1.17x and 0.74x on two builds under load)."""
AUTO_BREAK_EVEN_CALLS = 10.0
"""The most calls an engine may need to repay its one-time cost over onnxruntime FP32
(importing OpenVINO, compiling, a slow first call; ``speed.break_even_calls`` recorded at
build) for ``auto`` to run it. Keeps auto off engines that only pay over hundreds of calls:
an OpenVINO INT8 engine of the 5 ms demo saves ~4 ms a call and costs ~1 s once (its
one-shot ``synthesize`` took 1.7 s against 0.6 s with onnxruntime FP32)."""
QUALITY_BARS_DB = {"fp32": 50.0, "bf16": 45.0, "int8": 35.0}
"""PSNR (dB) of a CPU engine's **worst** 8-bit image against the bundle's FP32 graph
(onnxruntime) on the held-out set (``export.quality_set``), below which the builder does
not write the engine and ``auto`` does not run it. INT8 35 dB and BF16 45 dB are issue 25's
bars (from 30 / 40 dB on the mean of maps like the calibration set's); FP32 (50 dB: a
level off on well under 1% of pixels) only catches a broken conversion."""
RUNTIME_PACKAGES = {"openvino": "openvino", "onnxruntime-int8": "onnxruntime"}
"""The Python distribution whose version a CPU engine's key carries."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
             "asimd", "sve", "bf16", "i8mm")
"""CPU feature flags (``/proc/cpuinfo`` names, x86 and Arm) that change which kernels a
runtime picks: an engine tuned with them must not run on a CPU without them."""


def read_cpuinfo(text: str | None = None) -> dict[str, Any]:
    """The first processor of ``/proc/cpuinfo`` (or ``text``): vendor, model name, family,
    model and flags. Empty where there is no ``/proc/cpuinfo`` (macOS, Windows)."""
    if text is None:
        try:
            with open("/proc/cpuinfo") as f:
                text = f.read()
        except OSError:
            return {}
    info: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break  # the first processor is enough: the others are the same CPU
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name in ("vendor_id", "model name", "cpu family", "model", "cpu implementer", "cpu part"):
            info[name] = value
        elif name in ("flags", "features"):
            info["flags"] = set(value.split())
    return info


def _isa_tier(flags: set[str]) -> str:
    """The widest matrix / vector extension, the part of the slug a reader recognises."""
    for tier, needs in (("amx", {"amx_bf16", "amx_int8"}), ("avx512bf16", {"avx512_bf16"}),
                        ("avx512vnni", {"avx512_vnni"}), ("avx512", {"avx512f"}), ("avxvnni", {"avx_vnni"}),
                        ("avx2", {"avx2"}), ("sve", {"sve"}), ("neon", {"asimd"})):
        if needs & flags:
            return tier
    return "base"


def cpu_device(cpuinfo: dict[str, Any] | None = None) -> str:
    """``cpu-<arch>-<model>-<isa tier>-<hash>``, e.g. ``cpu-x86_64-amd-epyc-avx512bf16-3f2a9c1e``.

    The hash (8 hex digits of sha256) covers vendor, model name, family, model and the
    :data:`ISA_FLAGS` present, so a CPU that differs in any of them (another generation
    behind the same marketing name, a VM that hides AVX-512) gets another key and its
    engines are refused. ``cpuinfo``: :func:`read_cpuinfo`'s dict (tests pass another CPU's).
    """
    info = read_cpuinfo() if cpuinfo is None else cpuinfo
    arch = platform.machine().lower() or "unknown"
    flags = set(info.get("flags", ()))
    name = info.get("model name") or platform.processor() or "unknown"
    model = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\d+-core", " ", name.lower())
    model = _slug(model)[:24].strip("-") or "unknown"
    identity = [info.get(k, "") for k in ("vendor_id", "model name", "cpu family", "model", "cpu implementer",
                                          "cpu part")] + sorted(flags & set(ISA_FLAGS))
    digest = hashlib.sha256("|".join(identity).encode()).hexdigest()[:8]
    return f"cpu-{arch}-{model}-{_isa_tier(flags)}-{digest}"


def gpu_device(name: str, capability: tuple[int, int]) -> str:
    """``nvidia-h100-80gb-hbm3-sm90`` from a GPU name and compute capability."""
    return f"{_slug(name)}-sm{capability[0]}{capability[1]}"


def engine_key(backend: str, precision: str, device: str, versions: dict[str, str]) -> str:
    """The folder name and manifest key of an engine (see the module docstring)."""
    if backend not in ENGINE_BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r}; choose one of {', '.join(ENGINE_BACKENDS)}")
    if precision not in BACKEND_PRECISIONS[backend]:
        raise ValueError(f"unknown precision {precision!r} for {backend}; choose one of "
                         f"{', '.join(BACKEND_PRECISIONS[backend])}")
    runtime = "-".join(f"{_slug(k)}{_slug(v)}" for k, v in versions.items())
    return f"{backend}-{precision}-{device}-{runtime}"


# -- this machine --------------------------------------------------------------------
def tensorrt_target() -> tuple[str, dict[str, str]]:
    """(device, versions) a TensorRT engine built here would carry. Needs tensorrt and a GPU."""
    trt = import_tensorrt()
    from .devices import cuda_device, cuda_runtime_version

    name, cap = cuda_device()
    return gpu_device(name, cap), {"trt": trt.__version__, "cuda": cuda_runtime_version()}


def aoti_target(device: str | None = None) -> tuple[str, dict[str, str]]:
    """(device, versions) an AOTInductor package built here would carry (GPU if present)."""
    import torch

    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    versions = {"torch": torch.__version__.split("+")[0]}
    if use_cuda:
        versions["cuda"] = str(torch.version.cuda)
        return gpu_device(torch.cuda.get_device_name(), torch.cuda.get_device_capability()), versions
    return cpu_device(), versions


def runtime_version(package: str) -> str:
    """The installed version of ``package`` read from its metadata (no import: auto
    selection must not pay for importing OpenVINO), or a :class:`BackendError` saying how
    to install it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        extra = " (pip install 'sdk[cpu]')" if package == "openvino" else ""
        raise BackendError(f"{package} is not installed here{extra}") from None


def cpu_engine_target(backend: str) -> tuple[str, dict[str, str]]:
    """(device, versions) a CPU engine of ``backend`` built here would carry."""
    package = RUNTIME_PACKAGES[backend]
    return cpu_device(), {package: runtime_version(package)}


def current_key(backend: str, precision: str) -> str:
    """The key an engine of ``backend`` at ``precision`` must carry to run on this machine."""
    if backend in CPU_ENGINE_BACKENDS:
        device, versions = cpu_engine_target(backend)
    else:
        device, versions = tensorrt_target() if backend == "tensorrt" else aoti_target()
    return engine_key(backend, precision, device, versions)


def import_tensorrt() -> Any:
    """``import tensorrt`` with the error that says how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError(
            f"TensorRT is not installed here ({exc}). It needs an NVIDIA GPU: pip install tensorrt "
            "cuda-python (TensorRT 10), or use --backend aoti / the onnxruntime backend") from exc
    return tensorrt


# -- manifest records ------------------------------------------------------------------


def default_precision(backend: str) -> str:
    """The precision to build ``backend`` at on this machine: fp16 on a GPU, fp32 for a CPU
    AOTInductor package (fp16 needs a GPU), int8 for the CPU engine backends."""
    if backend in CPU_ENGINE_BACKENDS:
        return "int8"
    if backend == "aoti":
        try:
            import torch

            return "fp16" if torch.cuda.is_available() else "fp32"
        except ImportError:
            return "fp32"
    return "fp16"


def rebuild_hint(bundle: Bundle, backend: str, precision: str) -> str:
    return f"rebuild with python -m export engine --bundle {bundle.path} --backend {backend} --precision {precision}"


def engines_of(bundle: Bundle, backend: str, precision: str | None = None) -> list[EngineRecord]:
    """Records of ``backend`` (optionally at ``precision``) in the bundle's manifest."""
    return [r for r in bundle.manifest.engines.values()
            if r.backend == backend and (precision is None or r.precision == precision)]


def select_engine(bundle: Bundle, backend: str, precision: str | None = None,
                  key: str | None = None) -> EngineRecord:
    """The record of ``backend`` built for this machine, or a :class:`BackendError` naming the fix.

    ``key`` (computed by the caller for tests) defaults to :func:`current_key`. With no
    precision, a CPU engine backend takes its fastest matching record (highest recorded
    speed-up over onnxruntime FP32); the others the first in the order fp16, bf16, tf32, fp32.
    """
    records = engines_of(bundle, backend, precision)
    wanted = precision or default_precision(backend)
    if not records:
        raise BackendError(f"bundle {bundle.path} has no {backend} engine"
                           f"{'' if precision is None else ' at ' + precision}; {rebuild_hint(bundle, backend, wanted)}")
    order = [p for p in ("fp16", "bf16", "int8", "tf32", "fp32") if precision in (None, p)]
    matching = [r for p in order for r in records
                if r.precision == p and r.key == (key if key is not None else current_key(backend, p))]
    if matching:
        if precision is None and backend in CPU_ENGINE_BACKENDS:
            return max(matching, key=lambda r: r.speedup)
        return matching[0]
    here = key if key is not None else current_key(backend, records[0].precision)
    built = ", ".join(sorted(r.key for r in records))
    raise BackendError(f"the {backend} engines of {bundle.path} were built for another device or runtime "
                       f"({built}); this machine needs {here}: {rebuild_hint(bundle, backend, records[0].precision)}")


def meets_bar(bundle: Bundle, record: EngineRecord) -> bool:
    """True when the record's worst held-out image meets its precision's bar; a record from
    before worst images were recorded gets one notice saying how to rebuild it."""
    worst = record.worst_psnr_db
    if worst is None:
        from .notices import notice

        notice(f"the {record.backend} {record.precision} engine of {bundle.path} records no worst-image "
               f"quality (built by an older sdk), so auto passes over it; "
               f"{rebuild_hint(bundle, record.backend, record.precision)}")
        return False
    return worst >= QUALITY_BARS_DB.get(record.precision, float("inf"))


def fastest_cpu_engine(bundle: Bundle) -> EngineRecord | None:
    """The CPU engine ``backend="auto"`` runs: of the records built for this CPU and runtime
    whose worst held-out image meets :data:`QUALITY_BARS_DB` (:func:`meets_bar`), the one
    with the highest speed-up over onnxruntime FP32 measured at its build, if at least
    :data:`AUTO_MIN_SPEEDUP` and its one-time cost is repaid within
    :data:`AUTO_BREAK_EVEN_CALLS` calls."""
    best = None
    for backend in CPU_ENGINE_BACKENDS:
        for record in engines_of(bundle, backend):
            try:
                here = current_key(backend, record.precision)
            except BackendError:  # its runtime is not installed here
                break
            if record.key != here or not meets_bar(bundle, record):
                continue
            even = None if record.speed is None else record.speed.break_even_calls
            pays = even is not None and even <= AUTO_BREAK_EVEN_CALLS
            if record.speedup >= AUTO_MIN_SPEEDUP and pays and (best is None or record.speedup > best.speedup):
                best = record
    return best


def select_engine_file(bundle: Bundle, backend: str, graph: str,
                       precision: str | None = None) -> tuple[EngineRecord, Path]:
    """``select_engine``'s record and the path of its file for ``graph``."""
    record = select_engine(bundle, backend, precision)
    rel = record.files.get(graph)
    if rel is None:
        raise BackendError(f"the {backend} engine {record.key} has no {graph!r} graph; "
                           f"{rebuild_hint(bundle, backend, record.precision)}")
    return record, bundle.file(rel)


def has_matching_engine(bundle: Bundle, backend: str) -> bool:
    """True when ``select_engine`` would succeed (False if the runtime is missing here)."""
    if not engines_of(bundle, backend):
        return False
    try:
        select_engine(bundle, backend)
    except (BackendError, ImportError, RuntimeError):
        return False
    return True
