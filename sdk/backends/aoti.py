"""AOTInductor backend: runs a ``.pt2`` package from ``engines/<key>/``.

The package holds the compiled graph and its weights; loading it
(``torch._inductor.aoti_load_package``) needs torch but not the ``train`` package, the
network code or the bundle's safetensors. Packages take and return FP32 tensors; FP16 /
BF16 casting and channels-last are compiled into the package (``export/engine_aoti.py``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import Bundle
from ..engines import select_engine_file
from ..errors import BackendError
from .base import Runner


def load_package(path: str) -> Any:
    """The callable compiled model in an AOTInductor package."""
    try:
        import torch._inductor
    except ImportError as exc:
        raise BackendError(f"the aoti backend needs torch ({exc}); pip install 'sdk[torch]'") from exc
    try:
        return torch._inductor.aoti_load_package(str(path))
    except Exception as exc:  # the loader raises RuntimeError and friends
        raise BackendError(f"cannot load AOTInductor package {path}: {exc}; rebuild it with python -m export engine") from exc


def package_device(record: dict[str, Any]) -> str:
    return "cpu" if record["device"].startswith("cpu-") else "cuda"


class PackageExecutor:
    """Numpy feeds (in graph input order) through a loaded package on its device."""

    def __init__(self, path: str, input_names: list[str], device: str, precision: str = "fp32") -> None:
        import torch

        self.torch = torch
        if device.startswith("cuda"):  # convolutions call cuDNN at run time: TF32 only when asked for
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        self.model = load_package(path)
        self.input_names = input_names
        self.device = torch.device(device)

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(feeds[n]).to(self.device) for n in self.input_names]
        with torch.inference_mode():
            out = self.model(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return [o.float().cpu().numpy() for o in out]


class AOTIRunner(Runner):
    """A bundle graph through its AOTInductor package for this machine (refused if built elsewhere)."""

    name = "aoti"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None) -> None:
        super().__init__(bundle, graph)
        self.record, path = select_engine_file(bundle, "aoti", graph, precision)
        names = [m.name for m in self.inputs]
        self.executor = PackageExecutor(str(path), names, package_device(self.record),
                                        self.record["precision"])

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.executor(feeds)))

    def describe(self) -> str:
        return f"aoti {self.record['precision']} {self.record['device']}"
