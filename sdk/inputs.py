"""Checks of the plain arguments users type: seeds, counts, batch sizes, output kinds.

Each raises :class:`~sdk.errors.SDKError` with one line naming the argument, what was
given and what is accepted, so a CLI prints it and exits 2 instead of a traceback.
"""
from __future__ import annotations

import numbers
from typing import Any

from .errors import SDKError

OUTPUTS = ("pil", "uint8", "float")
"""What a synthesis call returns: PIL images (default), (H, W, 3) uint8 arrays, or the
graph's float images (3, H, W) in [-1, 1]."""
MAX_SEED = 2**63 - 1


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_seed(seed: Any, what: str = "seed") -> int | None:
    """``None`` (a fresh random draw) or an integer in 0..2**63-1."""
    if seed is None:
        return None
    if not _is_int(seed) or not 0 <= int(seed) <= MAX_SEED:
        raise SDKError(f"{what} must be a non-negative integer (0..{MAX_SEED}) or None, got {seed!r}")
    return int(seed)


def check_count(n: Any, what: str = "n", maximum: int | None = None) -> int:
    """A whole number >= 1 (``2.5`` is refused, not truncated)."""
    if not _is_int(n) or int(n) < 1:
        raise SDKError(f"{what} must be a whole number >= 1, got {n!r}")
    if maximum is not None and int(n) > maximum:
        raise SDKError(f"{what} must be at most {maximum}, got {n!r}")
    return int(n)


def check_batch_size(batch_size: Any) -> int | None:
    """``None`` (chosen from memory) or a whole number >= 1."""
    return None if batch_size is None else check_count(batch_size, "batch_size")


def check_tol(tol: Any) -> float:
    """An editor's preview tolerance: a finite number >= 0 (0: exact updates)."""
    try:
        value = float(tol)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value < float("inf"):
        raise SDKError(f"tol is {tol}; give a finite number >= 0 (0: exact updates; 0.01: a preview)")
    return value


def check_output(output: Any) -> str:
    if output not in OUTPUTS:
        raise SDKError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output
