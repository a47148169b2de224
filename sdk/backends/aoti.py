"""AOTInductor backend: runs a ``.pt2`` package from ``engines/<key>/``.

The package holds the compiled graph and its weights; loading it
(``torch._inductor.aoti_load_package``) needs torch but not the ``train`` package, the
network code or the bundle's safetensors. Packages take the graph's inputs (int32 ids,
uint8 edges, float32) and return its outputs (float32 images and their 8-bit copies); FP16 /
BF16 casting and channels-last are compiled into the package (``export/engine_aoti.py``).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np

from ..bundle import Bundle
from ..engines import select_engine_file
from ..errors import BackendError
from ..manifest import EngineRecord, ProbeRecord, TensorSpec
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


_PROBE = """
import json, sys
import numpy as np
import torch
path, device, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = torch._inductor.aoti_load_package(path)
args = [torch.from_numpy(np.zeros(shape, dtype)).to(device) for shape, dtype in inputs]
with torch.inference_mode():
    out = model(*args)
if device.startswith("cuda"):
    torch.cuda.synchronize()
print("ok")
"""


PROBE_TIMEOUT_S = 90.0
"""How long a probe may take before it counts as hung. A healthy one imports torch, starts
CUDA, unpacks the package and runs batch 1: seconds (7 s for a CI-size CPU package on a
loaded 2-core machine, 2026-12-02). A hang is a hang however long one waits, and on a lent
GPU machine (15 minutes of device time in all) the old bound, five minutes, was a third."""


def probe_package(path: str, inputs: list[TensorSpec], device: str,
                  timeout: float = PROBE_TIMEOUT_S) -> ProbeRecord:
    """Load ``path`` and run it once at batch 1 in a fresh subprocess.

    Loading a CUDA AOTInductor package in a fresh process segfaults (or hangs) on some
    torch builds (seen with torch 2.11 + CUDA 13 on an H100); a crash here costs a
    subprocess, not the user's process, and a hang at most ``timeout`` seconds.
    Returns the record of the probe (ok, return code, seconds, why it failed).
    """
    start = time.perf_counter()
    shapes = json.dumps([[list(s.batch_shape(1)), s.dtype] for s in inputs])
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path), device, shapes],
                              capture_output=True, text=True, timeout=timeout)
        rc, err = proc.returncode, (proc.stderr or "").strip()
        ok = rc == 0 and proc.stdout.strip().endswith("ok")
    except subprocess.TimeoutExpired:
        rc, err, ok = None, f"no answer within {timeout:g} s (hung)", False
    return ProbeRecord(ok=ok, returncode=rc, seconds=round(time.perf_counter() - start, 1),
                       detail="" if ok else describe_failure(rc, err))


def describe_failure(returncode: int | None, stderr: str) -> str:
    """One line on how a probe process ended: the signal that killed it, and its last error line."""
    how = ""
    if returncode is not None and returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return "; ".join(x for x in (how, last) if x) or f"exit status {returncode}"


def probe_failed(record: EngineRecord) -> str | None:
    """Why ``record``'s packages failed their load probe, or None when they loaded."""
    failed = record.failed_probes()
    if not failed:
        return None
    return "; ".join(f"{g}: {p.detail or 'failed'}" for g, p in failed.items())


def package_device(record: EngineRecord) -> str:
    return "cpu" if record.device.startswith("cpu-") else "cuda"


class PackageExecutor:
    """Numpy feeds (by input name) through a loaded package on its device -> outputs by name."""

    def __init__(self, path: str, input_names: list[str], output_names: list[str], device: str,
                 precision: str = "fp32") -> None:
        import torch

        self.torch = torch
        if device.startswith("cuda"):  # convolutions call cuDNN at run time: TF32 only when asked for
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        self.model = load_package(path)
        self.input_names = input_names
        self.output_names = output_names
        self.device = torch.device(device)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
        with torch.inference_mode():
            out = self.model(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.cpu().numpy() for n, o in zip(self.output_names, out)}


class AOTIRunner(Runner):
    """A bundle graph through its AOTInductor package for this machine (refused if built elsewhere)."""

    name = "aoti"

    def __init__(self, bundle: Bundle, graph: str = "model", *, precision: str | None = None) -> None:
        super().__init__(bundle, graph)
        self.record, path = select_engine_file(bundle, "aoti", graph, precision)
        self.executor = PackageExecutor(str(path), [m.name for m in self.inputs], self.output_names,
                                        package_device(self.record), self.record.precision)

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        out = self.executor(feeds)
        return {n: out[n] for n in outputs}

    def describe(self) -> str:
        return f"aoti {self.record.precision} {self.record.device}"
