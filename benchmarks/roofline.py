"""Roofline floor of one inference on a GPU.

``floor = max(FLOPs / peak FLOP/s, bytes / memory bandwidth)``: no implementation can be
faster. The latency benchmark takes the peaks from :func:`measure_ceilings`, run in its own
process on the GPU it measures: a large GEMM per precision (8192^3: FP16 / BF16 / TF32 on
tensor cores, FP32 on the CUDA cores) and a 1 GiB device-to-device copy. The vendors'
dense datasheet figures (:data:`KNOWN_GPUS`) are kept for comparison only: an H200 here
ran large BF16 GEMMs at about 790 TFLOP/s against the datasheet's 989. ``bytes`` is a lower bound on memory traffic: the
weights once (at the run precision) plus the inputs and outputs; activations that spill
to memory are not counted, so the floor is optimistic. CPUs get no roofline (``None``):
their peak depends on the SKU, clocks and vector units, which we do not detect.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class GPUSpec:
    name: str
    fp32_tflops: float | None  # CUDA cores
    tf32_tflops: float | None  # tensor cores, dense
    fp16_tflops: float | None  # tensor cores, dense, FP32 accumulate
    bandwidth_gbs: float
    bf16_tflops: float | None = None  # None: as FP16 (the datasheets give one figure)

    def peak_flops(self, precision: str) -> float:
        tflops = {"fp32": self.fp32_tflops, "tf32": self.tf32_tflops, "fp16": self.fp16_tflops,
                  "bf16": self.fp16_tflops if self.bf16_tflops is None else self.bf16_tflops}[precision]
        if tflops is None:
            raise ValueError(f"{self.name}: no {precision} peak (not measured)")
        return tflops * 1e12


# Datasheet figures (dense). Order matters: the first pattern that matches wins.
KNOWN_GPUS: list[tuple[str, GPUSpec]] = [
    (r"H200", GPUSpec("H200 SXM", 66.9, 494.7, 989.4, 4800)),
    (r"H100.*PCIe", GPUSpec("H100 PCIe", 51.2, 378.0, 756.0, 2000)),
    (r"H100", GPUSpec("H100 SXM", 66.9, 494.7, 989.4, 3350)),
    (r"A100", GPUSpec("A100 SXM 80GB", 19.5, 156.0, 312.0, 2039)),
    (r"\bL4\b", GPUSpec("L4", 30.3, 60.0, 121.0, 300)),
    (r"4090", GPUSpec("GeForce RTX 4090", 82.6, 82.6, 165.2, 1008)),
]

BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}


def lookup_gpu(device_name: str) -> GPUSpec | None:
    """The spec of a GPU from its reported name (``torch.cuda.get_device_name``), or None."""
    for pattern, spec in KNOWN_GPUS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return spec
    return None


def min_bytes(params: int, io_elements: int, precision: str) -> int:
    """Lower bound on memory traffic: weights at ``precision`` + FP32 inputs and outputs."""
    return params * BYTES_PER_ELEMENT[precision] + io_elements * 4


def roofline_floor_ms(flops: float, nbytes: float, gpu: GPUSpec, precision: str) -> float:
    """``max(flops / peak, bytes / bandwidth)`` in milliseconds."""
    return max(flops / gpu.peak_flops(precision), nbytes / (gpu.bandwidth_gbs * 1e9)) * 1e3


GEMM_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _median_ms(fn, device: str, runs: int, warmup: int) -> float:  # type: ignore[no-untyped-def]
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def gemm_tflops(precision: str, n: int = 8192, device: str = "cuda", runs: int = 10, warmup: int = 3) -> float:
    """TFLOP/s of an ``n`` x ``n`` x ``n`` matrix product at ``precision`` (median of ``runs``
    after ``warmup``; ``tf32``: FP32 with TF32 allowed, ``fp32``: with TF32 off)."""
    import torch

    dtype = getattr(torch, GEMM_DTYPES[precision])
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
        ms = _median_ms(lambda: torch.mm(a, b), device, runs, warmup)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n**3 / (ms / 1e3) / 1e12


def copy_gbs(nbytes: int = 1 << 30, device: str = "cuda", runs: int = 10, warmup: int = 3) -> float:
    """GB/s of a device-to-device copy of ``nbytes`` (read + write counted)."""
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), device, runs, warmup)
    return 2 * nbytes / (ms / 1e3) / 1e9


def measure_ceilings(device_name: str, precisions: Sequence[str], device: str = "cuda", n: int = 8192,
                     copy_bytes: int = 1 << 30) -> GPUSpec:
    """The roofline's ceilings measured now: :func:`gemm_tflops` for each of ``precisions``
    and :func:`copy_gbs`. About a second per precision on an H100 (FP32 without TF32 the
    slowest: ~20 ms a product)."""
    peaks = {p: gemm_tflops(p, n, device) for p in dict.fromkeys(precisions) if p in GEMM_DTYPES}
    return GPUSpec(f"{device_name} (measured: {n}^3 GEMM, {copy_bytes >> 20} MiB copy)", peaks.get("fp32"),
                   peaks.get("tf32"), peaks.get("fp16"), copy_gbs(copy_bytes, device), bf16_tflops=peaks.get("bf16"))
