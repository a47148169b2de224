"""OpenVINO backend (CPU): FP32, BF16 or INT8, from an engine built for this CPU.

``python -m export engine --backend openvino --precision fp32|bf16|int8`` converts the
bundle's ONNX graph once into an OpenVINO IR under ``engines/<key>/`` (INT8: the graph
quantized by ``export.quantize``), with its quality against the FP32 graph and its speed
in the manifest. The runner compiles that IR for the CPU with

* ``INFERENCE_PRECISION_HINT``: ``f32`` for FP32, ``bf16`` for BF16 (AVX512-BF16 / AMX
  kernels); an INT8 engine runs its quantized convolutions in int8 (VNNI) and the rest at
  the precision its build measured best (the record's ``notes`` say which);
* ``PERFORMANCE_HINT``: ``latency`` (one stream, every thread on one request; the
  default, what a single image needs) or ``throughput`` (several streams: a batch is split
  into one request per stream, run concurrently, and put back together in order);
* ``INFERENCE_NUM_THREADS`` from ``threads=`` (default: OpenVINO's, all cores).

Graphs the engine holds no file for (a style encoder) run the bundle's ONNX at FP32.
With no OpenVINO engine in the bundle, ``precision="fp32"`` (or none) runs the bundle's
ONNX graph directly; BF16 and INT8 need a built engine, whose quality was measured.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import Bundle
from ..engines import engines_of, rebuild_hint, select_engine
from ..errors import BackendError
from ..manifest import EngineRecord
from .base import Runner

MODES = ("latency", "throughput")
HINTS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino() -> Any:
    """``import openvino`` with the error that says how to get it."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendError(f"OpenVINO is not installed here ({exc}): pip install 'sdk[cpu]' "
                           "(or pip install openvino), or use the onnxruntime backend") from exc
    return openvino


def _cpu_only(backend: str, device: str | None) -> None:
    """``device=`` is accepted (the SDK's CLI passes it to any runner) but must be the CPU."""
    if device not in (None, "cpu"):
        raise BackendError(f"the {backend} backend runs on the CPU, not {device!r}; leave device unset or 'cpu'")


def compile_config(precision: str, *, mode: str = "latency", threads: int | None = None,
                   inference_precision: str | None = None) -> dict[str, Any]:
    """The ``compile_model`` properties for ``precision`` (see the module docstring)."""
    if mode not in MODES:
        raise BackendError(f"unknown OpenVINO mode {mode!r}; choose latency or throughput")
    hint = inference_precision or HINTS.get(precision, "f32")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": mode.upper()}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVINORunner(Runner):
    name = "openvino"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None,
                 threads: int | None = None, mode: str = "latency", device: str | None = None) -> None:
        super().__init__(bundle, graph)
        _cpu_only(self.name, device)
        ov = import_openvino()
        self.record: EngineRecord | None = None
        self.precision = "fp32"
        if self.graph_info.file is None:
            raise BackendError(f"{bundle.path} was exported without ONNX graphs (--no-onnx): OpenVINO reads the "
                               f"ONNX graph; re-export the bundle without --no-onnx")
        path = bundle.file(self.graph_info.file)
        if engines_of(bundle, "openvino", precision) or precision not in (None, "fp32"):
            if precision not in (None, "fp32", "bf16", "int8"):
                raise BackendError(f"OpenVINO runs fp32, bf16 or int8 on CPU, not {precision!r}")
            self.record = select_engine(bundle, "openvino", precision)
            rel = self.record.files.get(graph)
            if rel is not None:
                path, self.precision = bundle.file(rel), self.record.precision
        notes = self.record.notes if self.record else {}
        self.mode = mode
        self.config = compile_config(self.precision, mode=mode, threads=threads,
                                     inference_precision=notes.get("inference_precision") if self.record else None)
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", self.config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError for unreadable or unsupported models
            hint = (rebuild_hint(bundle, "openvino", self.precision) if self.record else "re-export the bundle")
            raise BackendError(f"OpenVINO cannot compile {path}: {exc}; {hint}") from exc
        self._request = self.compiled.create_infer_request()
        self._streams: list[Any] = []
        self.streams = int(self.compiled.get_property("NUM_STREAMS")) if mode == "throughput" else 1

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0] if feeds else 1
        if self.streams > 1 and batch > 1:
            return self._run_streams(feeds, outputs, batch)
        result = self._request.infer(feeds)
        return {name: np.array(result[self.compiled.output(name)], copy=True) for name in outputs}

    def _run_streams(self, feeds: dict[str, np.ndarray], outputs: list[str], batch: int) -> dict[str, np.ndarray]:
        """Throughput mode: the batch split into one request per stream, run concurrently.

        Plain requests with ``start_async`` / ``wait``, not an ``AsyncInferQueue`` with a
        Python callback: destroying such a queue deadlocked (its threads wait for the GIL)."""
        if not self._streams:
            self._streams = [self.compiled.create_infer_request() for _ in range(self.streams)]
        bounds = np.linspace(0, batch, min(self.streams, batch) + 1).astype(int)
        used = self._streams[:len(bounds) - 1]
        for request, lo, hi in zip(used, bounds[:-1], bounds[1:]):
            request.start_async({k: np.ascontiguousarray(v[lo:hi]) for k, v in feeds.items()})
        for request in used:
            request.wait()
        return {name: np.concatenate([np.array(r.get_tensor(name).data, copy=True) for r in used])
                for name in outputs}

    def describe(self) -> str:
        return f"openvino {self.precision} ({self.mode})"

    def close(self) -> None:
        self._streams, self._request, self.compiled = [], None, None
