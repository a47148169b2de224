"""TensorRT backend: runs a plan from ``engines/<key>/`` (TensorRT 10 Python API).

Written against the documented TensorRT 10 API (``Runtime.deserialize_cuda_engine``,
``IExecutionContext.set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``)
with device memory and a stream from cuda-python (``cuda.bindings.runtime``, or the
older ``cuda.cudart``). ``tensorrt`` and ``cuda`` are imported only when a runner is
built. Inputs and outputs of the plan keep the ONNX graph's I/O types (int32 class ids,
uint8 edge maps, float32 latents in; float32 and uint8 images out); reduced precision
lives inside the engine. Only the requested outputs are copied back to the host.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import Bundle
from ..devices import check_cuda, import_cudart
from ..engines import import_tensorrt, select_engine_file
from ..errors import BackendError
from .base import Runner


def load_plan(path: str) -> tuple[Any, Any]:
    """(engine, execution context) deserialised from a plan file."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    with open(path, "rb") as f:
        engine = runtime.deserialize_cuda_engine(f.read())
    if engine is None:
        raise BackendError(f"TensorRT cannot deserialise {path} (built by another TensorRT or for another GPU)")
    return engine, engine.create_execution_context()


class PlanExecutor:
    """Runs one deserialised plan on numpy feeds: copies in, ``execute_async_v3``, copies out."""

    def __init__(self, path: str) -> None:
        self.trt = import_tensorrt()
        self.cudart = import_cudart()
        self.engine, self.context = load_plan(path)
        self.stream = check_cuda(self.cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                check_cuda(self.cudart.cudaFree(ptr))
            ptr = int(check_cuda(self.cudart.cudaMalloc(nbytes)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def __call__(self, feeds: dict[str, np.ndarray], fetch: list[str] | None = None) -> dict[str, np.ndarray]:
        """Outputs named in ``fetch`` (default all) copied to the host; every output is computed."""
        cudart, trt = self.cudart, self.trt
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.input_names:
            x = np.ascontiguousarray(feeds[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            if not self.context.set_input_shape(name, x.shape):
                raise BackendError(f"input {name!r} shape {x.shape} is outside the engine's profile; "
                                   "rebuild with python -m export engine --batch MIN:OPT:MAX")
            ptr = self._buffer(name, x.nbytes)
            check_cuda(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        outputs = {}
        wanted = set(self.output_names if fetch is None else fetch)
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            out = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._buffer(name, out.nbytes))
            if name in wanted:
                outputs[name] = out
        if not self.context.execute_async_v3(self.stream):
            raise BackendError("TensorRT execute_async_v3 failed")
        for name, out in outputs.items():
            ptr, _ = self._buffers[name]
            check_cuda(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
        check_cuda(cudart.cudaStreamSynchronize(self.stream))
        return outputs

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self.cudart.cudaFree(ptr)
        self._buffers.clear()
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class TensorRTRunner(Runner):
    """A bundle graph through its TensorRT plan for this machine (refused if built elsewhere)."""

    name = "tensorrt"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None) -> None:
        super().__init__(bundle, graph)
        self.record, path = select_engine_file(bundle, "tensorrt", graph, precision)
        self.executor = PlanExecutor(str(path))

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        return self.executor(feeds, outputs)

    def close(self) -> None:
        self.executor.close()

    def describe(self) -> str:
        return f"tensorrt {self.record.precision} {self.record.device}"
