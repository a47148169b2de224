"""Backends behind one runner contract (``sdk.backends.base.Runner``): one registry that
the Synthesizer, the engine builder and the benchmark all read.

The runtime's own backends are listed here; a backend that lives in a higher layer
registers itself through the ``sdk.backends`` entry point group (``pyproject.toml``): the
torch runner, which rebuilds networks, comes from ``sdk.train.deploy.runner``, so the
runtime never imports the network code. Each backend module is imported only when chosen,
so ``import sdk`` needs neither torch nor TensorRT nor OpenVINO.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from ..bundle import Bundle
from ..errors import BackendError
from ..manifest import TensorSpec
from ..notices import notice
from .base import Runner

_BUILTIN = {
    "aoti": "sdk.backends.aoti:AOTIRunner",
    "onnxruntime": "sdk.backends.onnxruntime:OnnxRuntimeRunner",
    "onnxruntime-int8": "sdk.backends.onnxruntime:OnnxRuntimeInt8Runner",
    "openvino": "sdk.backends.openvino:OpenVINORunner",
    "tensorrt": "sdk.backends.tensorrt:TensorRTRunner",
}
ENTRY_POINTS = "sdk.backends"


def _registry() -> dict[str, str]:
    """Backend name -> ``module:class``: the built-ins, then the entry points."""
    from importlib.metadata import entry_points

    registry = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINTS):
        registry.setdefault(ep.name, ep.value)
    return registry


def available_backends() -> list[str]:
    return sorted(_registry())


def cuda_machine() -> bool:
    """True where torch is installed and sees a CUDA GPU. Without an NVIDIA driver on the
    machine, torch is not even imported (it takes a second or two)."""
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version"):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install is no GPU to us
        return False


def resolve_backend(bundle: Bundle, backend: str) -> str:
    """``auto`` picks the fastest backend this machine and bundle can run: a TensorRT engine
    built for this machine, else an AOTInductor package built for it that loads, else the
    torch GPU runner on a CUDA machine, else the CPU engine (OpenVINO, onnxruntime INT8)
    built for this CPU with the highest speed-up over onnxruntime FP32 measured at its
    build (``sdk.engines.fastest_cpu_engine``), else onnxruntime."""
    if backend == "auto":
        from ..engines import fastest_cpu_engine, has_matching_engine, select_engine
        from .aoti import probe_failed

        if has_matching_engine(bundle, "tensorrt"):
            return "tensorrt"
        if has_matching_engine(bundle, "aoti") and not probe_failed(select_engine(bundle, "aoti")):
            return "aoti"
        if cuda_machine() and "torch" in _registry():
            return "torch"
        cpu = fastest_cpu_engine(bundle)
        return cpu.backend if cpu is not None else "onnxruntime"
    registry = _registry()
    if backend not in registry:
        raise BackendError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(sorted(registry))}")
    return backend


def runner_class(backend: str) -> type[Runner]:
    """The runner class of a backend name (its module imported now)."""
    registry = _registry()
    if backend not in registry:
        raise BackendError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(sorted(registry))}")
    module, cls = registry[backend].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} is not installed here ({exc})") from exc
    return getattr(mod, cls)


def runner_options(backend: str) -> list[str]:
    """The keyword options a backend's runner takes (its ``__init__`` keyword-only parameters)."""
    params = inspect.signature(runner_class(backend).__init__).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and not p.name.startswith("_") and p.name != "model"]


def check_options(backend: str, options: dict[str, Any]) -> None:
    """Refuse options ``backend``'s runner does not take, naming those it does."""
    known = runner_options(backend)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BackendError(f"backend {backend!r} takes no option {', '.join(map(repr, unknown))}; "
                           f"it takes: {', '.join(known) or 'none'}")


def make_runner(bundle: Bundle, backend: str, graph: str = "model", **options: Any) -> Runner:
    backend = resolve_backend(bundle, backend)
    if backend == "aoti":
        from ..engines import select_engine
        from .aoti import probe_failed

        why = probe_failed(select_engine(bundle, "aoti", options.get("precision")))
        if why:  # never load a package that crashed its probe in the user's process
            notice(f"the AOTInductor package of {bundle.name} crashed when loaded in a fresh process "
                   f"({why}); running the torch backend instead")
            backend = "torch"
    check_options(backend, options)
    return runner_class(backend)(bundle, graph, **options)


def __getattr__(name: str) -> Any:
    """``TensorMeta``, the runner's input metadata before it was the manifest's
    :class:`~sdk.manifest.TensorSpec`: kept for one version, with a warning."""
    if name == "TensorMeta":
        from ..deprecation import deprecated

        deprecated("sdk.backends.TensorMeta is deprecated (it goes in the next version): runner.inputs are "
                   "sdk.manifest.TensorSpec (name, kind, shape, attrs, dtype)")
        return TensorSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Runner", "TensorSpec", "available_backends", "check_options", "make_runner", "resolve_backend",
           "runner_options"]
