"""Built engines in a bundle: keys, batch profiles, manifest records, matching.

An engine (a TensorRT plan, an AOTInductor package) only runs on the device and the
runtime it was built for. It lives in ``engines/<key>/`` of the bundle, where the key
names the backend, the precision, the device (GPU name + compute capability, or
``cpu-<arch>``) and the runtime versions::

    tensorrt-fp16-nvidia-h100-80gb-hbm3-sm90-trt10.3.0-cuda12.4
    aoti-fp32-cpu-x86_64-torch2.13.0

The manifest's ``engines`` section maps each key to its record (see
:func:`engine_record`). A runner recomputes the key of this machine and refuses an
engine whose key differs, naming the ``python -m export engine`` command that
rebuilds it. Nothing here imports torch or TensorRT at module level.
"""
from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bundle import Bundle
from .errors import BackendError

ENGINE_BACKENDS = ("tensorrt", "aoti")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
PARITY_LIMITS = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 1e-2, "bf16": 1e-2}
"""Relative L2 vs PyTorch FP32 an engine must meet (TF32 rounds matmul inputs to 10 bits,
so it gets the reduced-precision limit)."""
ENGINE_FILES = {"tensorrt": ".plan", "aoti": ".pt2"}


@dataclass(frozen=True)
class BatchProfile:
    """Dynamic batch range of an engine: TensorRT tunes for ``opt``, accepts ``min..max``."""

    min: int
    opt: int
    max: int

    def to_json(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def parse_batch_profile(text: str) -> BatchProfile:
    """``"1:4:8"`` -> ``BatchProfile(1, 4, 8)``; ``"4"`` -> ``BatchProfile(4, 4, 4)``."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"batch profile {text!r} is not MIN:OPT:MAX of integers (e.g. 1:4:8)") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"batch profile {text!r} needs three values MIN:OPT:MAX (e.g. 1:4:8) or one")
    lo, opt, hi = values
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile {text!r} must satisfy 1 <= MIN <= OPT <= MAX")
    return BatchProfile(lo, opt, hi)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def cpu_device() -> str:
    """``cpu-<arch>``, e.g. ``cpu-x86_64`` (the arch is kept as the OS names it)."""
    return f"cpu-{platform.machine().lower() or 'unknown'}"


def gpu_device(name: str, capability: tuple[int, int]) -> str:
    """``nvidia-h100-80gb-hbm3-sm90`` from a GPU name and compute capability."""
    return f"{_slug(name)}-sm{capability[0]}{capability[1]}"


def engine_key(backend: str, precision: str, device: str, versions: dict[str, str]) -> str:
    """The folder name and manifest key of an engine (see the module docstring)."""
    if backend not in ENGINE_BACKENDS:
        raise ValueError(f"unknown engine backend {backend!r}; choose one of {', '.join(ENGINE_BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    runtime = "-".join(f"{_slug(k)}{_slug(v)}" for k, v in versions.items())
    return f"{backend}-{precision}-{device}-{runtime}"


# -- this machine --------------------------------------------------------------------
def tensorrt_target() -> tuple[str, dict[str, str]]:
    """(device, versions) a TensorRT engine built here would carry. Needs tensorrt and a GPU."""
    trt = import_tensorrt()
    from .backends.tensorrt import cuda_device, cuda_runtime_version

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


def current_key(backend: str, precision: str) -> str:
    """The key an engine of ``backend`` at ``precision`` must carry to run on this machine."""
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
def engine_record(*, key: str, backend: str, precision: str, device: str, versions: dict[str, str],
                  batch: BatchProfile, files: dict[str, str], parity: dict[str, dict[str, float]],
                  shapes: dict[str, list[int]] | None = None, notes: dict[str, Any] | None = None,
                  build_s: float | None = None, probe: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One entry of the manifest's ``engines`` section.

    ``files``: graph -> path relative to the bundle; ``parity``: graph -> {"batch_N":
    relative L2 vs PyTorch FP32}; ``shapes``: input -> fixed non-batch dims if overridden;
    ``probe``: graph -> result of loading the file in a fresh process (AOTInductor).
    """
    return {
        "key": key, "backend": backend, "precision": precision, "device": device, "versions": versions,
        "batch": batch.to_json(), "files": files, "shapes": shapes or {},
        "parity": {"reference": "torch fp32 (bundle weights), seeded inputs", "metric": "relative_l2",
                   "limit": PARITY_LIMITS[precision], **parity},
        "build_s": build_s, "notes": notes or {}, "probe": probe or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def default_precision(backend: str) -> str:
    """The precision to build ``backend`` at on this machine: fp16 on a GPU, fp32 for a CPU
    AOTInductor package (fp16 needs a GPU)."""
    if backend == "aoti":
        try:
            import torch

            return "fp16" if torch.cuda.is_available() else "fp32"
        except ImportError:
            return "fp32"
    return "fp16"


def rebuild_hint(bundle: Bundle, backend: str, precision: str) -> str:
    return f"rebuild with python -m export engine --bundle {bundle.path} --backend {backend} --precision {precision}"


def engines_of(bundle: Bundle, backend: str, precision: str | None = None) -> list[dict[str, Any]]:
    """Records of ``backend`` (optionally at ``precision``) in the bundle's manifest."""
    return [r for r in (bundle.manifest.get("engines") or {}).values()
            if r.get("backend") == backend and (precision is None or r.get("precision") == precision)]


def select_engine(bundle: Bundle, backend: str, precision: str | None = None,
                  key: str | None = None) -> dict[str, Any]:
    """The record of ``backend`` built for this machine, or a :class:`BackendError` naming the fix.

    ``key`` (computed by the caller for tests) defaults to :func:`current_key`. With no
    precision, the first matching record wins in the order fp16, bf16, tf32, fp32.
    """
    records = engines_of(bundle, backend, precision)
    wanted = precision or default_precision(backend)
    if not records:
        raise BackendError(f"bundle {bundle.path} has no {backend} engine"
                           f"{'' if precision is None else ' at ' + precision}; {rebuild_hint(bundle, backend, wanted)}")
    order = [p for p in ("fp16", "bf16", "tf32", "fp32") if precision in (None, p)]
    for p in order:
        here = key if key is not None else current_key(backend, p)
        for r in records:
            if r["precision"] == p and r["key"] == here:
                return r
    here = key if key is not None else current_key(backend, records[0]["precision"])
    built = ", ".join(sorted(r["key"] for r in records))
    raise BackendError(f"the {backend} engines of {bundle.path} were built for another device or runtime "
                       f"({built}); this machine needs {here}: {rebuild_hint(bundle, backend, records[0]['precision'])}")


def select_engine_file(bundle: Bundle, backend: str, graph: str,
                       precision: str | None = None) -> tuple[dict[str, Any], Path]:
    """``select_engine``'s record and the path of its file for ``graph``."""
    record = select_engine(bundle, backend, precision)
    rel = record["files"].get(graph)
    if rel is None:
        raise BackendError(f"the {backend} engine {record['key']} has no {graph!r} graph; "
                           f"{rebuild_hint(bundle, backend, record['precision'])}")
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
