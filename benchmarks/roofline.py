"""Roofline floor of one inference on a known GPU.

``floor = max(FLOPs / peak FLOP/s, bytes / memory bandwidth)``: no implementation can be
faster. Peaks are the vendors' dense (no sparsity) datasheet figures; FP16/BF16 and TF32
use tensor cores, FP32 the CUDA cores. ``bytes`` is a lower bound on memory traffic: the
weights once (at the run precision) plus the inputs and outputs; activations that spill
to memory are not counted, so the floor is optimistic. CPUs get no roofline (``None``):
their peak depends on the SKU, clocks and vector units, which we do not detect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GPUSpec:
    name: str
    fp32_tflops: float  # CUDA cores
    tf32_tflops: float  # tensor cores, dense
    fp16_tflops: float  # tensor cores, dense, FP32 accumulate (BF16 the same)
    bandwidth_gbs: float

    def peak_flops(self, precision: str) -> float:
        tflops = {"fp32": self.fp32_tflops, "tf32": self.tf32_tflops,
                  "fp16": self.fp16_tflops, "bf16": self.fp16_tflops}[precision]
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
