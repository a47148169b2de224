"""onnxruntime backend: the embedded default (CPU; CUDA execution provider when present)."""
from __future__ import annotations

import numpy as np

from ..bundle import Bundle
from ..errors import BackendError
from .base import Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, graph: str = "model", *, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
        super().__init__(bundle, graph)
        import onnxruntime as ort

        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if self.graph_info["file"] is None:
            raise BackendError(f"{bundle.path} was exported without ONNX graphs (--no-onnx): run it with "
                               f"backend='torch', or re-export it without --no-onnx for onnxruntime")
        path = bundle.file(self.graph_info["file"])
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {path}: {exc}. Re-export the bundle") from exc
        self.providers = self.session.get_providers()

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, self.session.run(outputs, feeds)))

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]}"
