"""Parity: how far an exported artifact is from the network in PyTorch FP32, and the limits.

Every figure is the relative L2 error of the artifact's outputs against the one-hot
network (the module fed the float one-hot, as trained) on seeded inputs, in float64.
"""
from __future__ import annotations

import numpy as np
import torch

from sdk.train.models.spec import GraphSpec, to_uint8_image


def relative_l2(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """``||actual - expected|| / ||expected||`` in float64: the parity figure of every artifact."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shape mismatch in parity check: {a.shape} vs {e.shape}")
    denom = np.linalg.norm(e)
    return float(np.linalg.norm(a - e) / denom) if denom > 0 else float(np.linalg.norm(a - e))


PARITY_LIMIT = 1e-4


class ParityError(RuntimeError):
    """An exported graph disagrees with PyTorch beyond the allowed relative L2 error."""


def reference_outputs(graph: GraphSpec, examples: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    """The parity reference: ``graph``'s network fed the one-hot form of ``examples``
    (:meth:`GraphSpec.as_one_hot`), in FP32 on the CPU, outputs by name."""
    with torch.no_grad():
        ref = graph.module(*graph.as_one_hot(examples))
    ref = ref if isinstance(ref, tuple) else (ref,)
    return {s.name: r.float().numpy() for s, r in zip(graph.outputs, ref)}


def compare_outputs(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], what: str,
                    limit: float | None, max_levels: int | None = 1) -> tuple[float, int]:
    """(worst relative L2 over the reference's outputs, worst 8-bit level difference of the
    ``<name>_u8`` outputs in ``got`` against the reference rounded the same way).

    Raises :class:`ParityError` on a non-finite output, an error above ``limit`` or an 8-bit
    image more than ``max_levels`` off (FP32: 1, as rounding at a level boundary may flip one
    level; ``None``: not checked, for reduced precision).
    """
    err = max(relative_l2(got[name], ref) for name, ref in reference.items())
    if not np.isfinite(err):
        raise ParityError(f"{what}: non-finite output")
    if limit is not None and err > limit:
        raise ParityError(f"{what}: relative L2 error {err:.3g} vs PyTorch FP32 exceeds {limit:g}")
    levels = 0
    for name, ref in reference.items():
        if f"{name}_u8" in got:
            expected = to_uint8_image(torch.from_numpy(ref)).numpy().astype(np.int16)
            levels = max(levels, int(np.abs(got[f"{name}_u8"].astype(np.int16) - expected).max()))
    if max_levels is not None and levels > max_levels:
        raise ParityError(f"{what}: the 8-bit image differs from the rounded float image by {levels} levels")
    return err, levels


PARITY_LAYOUTS = {"random": "batch_{b}", "blocks": "blocks_batch_{b}"}
"""Label layouts every parity check runs (``TensorSpec.example``) and their report keys:
per-pixel random labels, and block label maps like real ones."""


PARITY_LIMITS = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 1e-2, "bf16": 1e-2}
"""Relative L2 vs PyTorch FP32 an engine must meet (TF32 rounds matmul inputs to 10 bits,
so it gets the reduced-precision limit). TensorRT and AOTInductor engines."""
