"""Backends behind one runner contract (``sdk.backends.base.Runner``).

Each backend module is imported only when chosen, so ``import sdk`` needs neither
torch nor TensorRT.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..bundle import Bundle
from ..errors import BackendError
from .base import Runner, TensorMeta

_BACKENDS = {
    "aoti": ("sdk.backends.aoti", "AOTIRunner"),
    "onnxruntime": ("sdk.backends.onnxruntime", "OnnxRuntimeRunner"),
    "tensorrt": ("sdk.backends.tensorrt", "TensorRTRunner"),
    "torch": ("sdk.backends.torch", "TorchRunner"),
}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def resolve_backend(bundle: Bundle, backend: str) -> str:
    """``auto`` picks the fastest backend this machine and bundle can run: a TensorRT engine
    built for this machine, else an AOTInductor package built for it, else onnxruntime."""
    if backend == "auto":
        from ..engines import has_matching_engine

        for engine_backend in ("tensorrt", "aoti"):
            if has_matching_engine(bundle, engine_backend):
                return engine_backend
        return "onnxruntime"
    if backend not in _BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(sorted(_BACKENDS))}")
    return backend


def make_runner(bundle: Bundle, backend: str, graph: str = "model", **options: Any) -> Runner:
    module, cls = _BACKENDS[resolve_backend(bundle, backend)]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} is not installed here ({exc})") from exc
    return getattr(mod, cls)(bundle, graph, **options)


__all__ = ["Runner", "TensorMeta", "available_backends", "make_runner", "resolve_backend"]
