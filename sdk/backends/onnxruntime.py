"""onnxruntime backends: the embedded default (CPU; CUDA execution provider when present),
and the INT8 engine built for this CPU (``onnxruntime-int8``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..bundle import Bundle
from ..engines import select_engine
from ..errors import BackendError
from .base import Runner


class OnnxRuntimeRunner(Runner):
    """A bundle graph in onnxruntime.

    Args:
        providers: execution providers in order of preference (default: CUDA when this
            onnxruntime has it, then CPU). Asking for one this onnxruntime lacks is an error,
            never a silent CPU run.
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``: shorthand for ``providers``.
        threads: intra-op threads (default: onnxruntime's, one per core).
    """

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, graph: str = "model", *, providers: Sequence[str] | None = None,
                 device: str | None = None, threads: int | None = None) -> None:
        super().__init__(bundle, graph)
        import onnxruntime as ort

        available = ort.get_available_providers()
        provider_options = None
        if device is not None:
            if providers is not None:
                raise BackendError("give device= or providers=, not both")
            kind, _, index = str(device).partition(":")
            if kind == "cpu" and not index:
                providers = ["CPUExecutionProvider"]
            elif kind == "cuda" and (not index or index.isdigit()):
                providers = ["CUDAExecutionProvider"]
                provider_options = [{"device_id": int(index or 0)}]
            else:
                raise BackendError(f"device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        elif isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
            raise BackendError(f"providers must be a list of provider names, e.g. ['CPUExecutionProvider'], "
                               f"got {providers!r}")
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendError(f"onnxruntime here has no {', '.join(missing)} (it has {', '.join(available)}); "
                               f"install the matching onnxruntime build (e.g. onnxruntime-gpu) or leave "
                               f"providers unset")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BackendError(f"threads must be a whole number >= 1, got {threads!r}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        path = self._graph_path()
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(providers),
                                                provider_options=provider_options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {path}: {exc}. Re-export the bundle") from exc
        self.providers = self.session.get_providers()

    def _graph_path(self) -> Path:
        if self.graph_info.file is None:
            raise BackendError(f"{self.bundle.path} was exported without ONNX graphs (--no-onnx): run it with "
                               f"backend='torch', or re-export it without --no-onnx for onnxruntime")
        return self.bundle.file(self.graph_info.file)

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(outputs, self.session.run(outputs, feeds)))
        except Exception as exc:  # onnxruntime's own exception types
            if "allocate" in str(exc).lower():
                batch = next(iter(feeds.values())).shape[0]
                raise BackendError(f"out of memory at batch {batch} in onnxruntime; pass a smaller batch_size "
                                   f"(e.g. {max(batch // 2, 1)})") from exc
            raise

    def describe(self) -> str:
        return f"onnxruntime {self.providers[0]}"

    def close(self) -> None:
        self.session = None


class OnnxRuntimeInt8Runner(OnnxRuntimeRunner):
    """The bundle's INT8 graph for this CPU (``python -m export engine --backend
    onnxruntime-int8``: QDQ, quantized by ``export.quantize``) on onnxruntime's CPU
    provider. Graphs the engine holds no file for (a style encoder) run at FP32."""

    name = "onnxruntime-int8"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None,
                 threads: int | None = None, device: str | None = None) -> None:
        if device not in (None, "cpu"):
            raise BackendError(f"the {self.name} backend runs on the CPU, not {device!r}; leave device unset or 'cpu'")
        if precision not in (None, "int8"):
            raise BackendError(f"the onnxruntime-int8 backend runs int8 engines, not {precision!r}; for FP32 "
                               f"use backend='onnxruntime'")
        self.record = select_engine(bundle, "onnxruntime-int8", "int8")
        super().__init__(bundle, graph, providers=["CPUExecutionProvider"], threads=threads)

    def _graph_path(self) -> Path:
        rel = self.record.files.get(self.graph_name)
        self.precision = "fp32" if rel is None else "int8"
        return super()._graph_path() if rel is None else self.bundle.file(rel)

    def describe(self) -> str:
        return f"onnxruntime {self.precision} (CPU)"
