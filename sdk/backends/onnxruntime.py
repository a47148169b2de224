"""onnxruntime backend: the embedded default (CPU; CUDA execution provider when present)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..bundle import Bundle
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
        if self.graph_info["file"] is None:
            raise BackendError(f"{bundle.path} was exported without ONNX graphs (--no-onnx): run it with "
                               f"backend='torch', or re-export it without --no-onnx for onnxruntime")
        path = bundle.file(self.graph_info["file"])
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(providers),
                                                provider_options=provider_options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {path}: {exc}. Re-export the bundle") from exc
        self.providers = self.session.get_providers()

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
