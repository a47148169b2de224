"""CUDA devices through cuda-python (TensorRT's runtime): the GPU's name, capability and
the CUDA runtime version, for engine keys and the TensorRT runner."""
from __future__ import annotations

from typing import Any

from .errors import BackendError


def import_cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime`` >= 12.6, else ``cuda.cudart``)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise BackendError(f"the tensorrt backend needs cuda-python ({exc}); pip install cuda-python") from exc
    return cudart


def check_cuda(result: Any) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple, raising on an error code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def cuda_device(index: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, (major, minor)) of GPU ``index``."""
    cudart = import_cudart()
    prop = check_cuda(cudart.cudaGetDeviceProperties(index))
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return name.split("\x00")[0], (int(prop.major), int(prop.minor))


def cuda_runtime_version() -> str:
    v = int(check_cuda(import_cudart().cudaRuntimeGetVersion()))
    return f"{v // 1000}.{(v % 1000) // 10}"
