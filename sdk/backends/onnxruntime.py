"""onnxruntime backends: the embedded default (CPU; CUDA execution provider when present),
and the INT8 engine built for this CPU (``onnxruntime-int8``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..engines import select_engine
from ..errors import BackendError
from .base import Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, graph: str = "model", *, providers: list[str] | None = None,
                 threads: int | None = None, precision: str | None = None) -> None:
        super().__init__(bundle, graph)
        if precision not in (None, "fp32", "int8") or (precision == "int8" and self.name == "onnxruntime"):
            raise BackendError(f"the onnxruntime backend runs the bundle's FP32 graph, not {precision}: for INT8 "
                               f"use backend 'onnxruntime-int8' or 'openvino', for BF16 'openvino'")
        import onnxruntime as ort

        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        path = self._graph_path()
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {path}: {exc}. Re-export the bundle") from exc
        self.providers = self.session.get_providers()

    def _graph_path(self) -> Path:
        if self.graph_info["file"] is None:
            raise BackendError(f"{self.bundle.path} was exported without ONNX graphs (--no-onnx): run it with "
                               f"backend='torch', or re-export it without --no-onnx for onnxruntime")
        return self.bundle.file(self.graph_info["file"])

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, self.session.run(outputs, feeds)))

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]}"


class OnnxRuntimeInt8Runner(OnnxRuntimeRunner):
    """The bundle's INT8 graph for this CPU (``python -m export engine --backend
    onnxruntime-int8``: QDQ, quantized by ``export.quantize``) on onnxruntime's CPU
    provider. Graphs the engine holds no file for (a style encoder) run at FP32."""

    name = "onnxruntime-int8"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None,
                 threads: int | None = None, providers: list[str] | None = None) -> None:
        if precision not in (None, "int8"):
            raise BackendError(f"the onnxruntime-int8 backend runs int8 engines, not {precision!r}; for FP32 "
                               f"use backend='onnxruntime'")
        self.record = select_engine(bundle, "onnxruntime-int8", "int8")
        super().__init__(bundle, graph, providers=providers or ["CPUExecutionProvider"], threads=threads,
                         precision=precision)

    def _graph_path(self) -> Path:
        rel = self.record["files"].get(self.graph_name)
        self.precision = "fp32" if rel is None else "int8"
        return super()._graph_path() if rel is None else self.bundle.file(rel)

    def describe(self) -> str:
        return f"onnxruntime {self.precision} (CPU)"
