"""Quality metrics, one registry: ``get_metric(name)(...)``.

Each metric module registers its functions with :func:`register_metric`; import
this package to load them all. Used by training evaluation (``log.metrics`` of a training
config: the EMA generator's images of the logged batch against the real ones) and by
``python -m benchmarks.metrics`` (two folders of images). ``PAIRWISE`` metrics compare
two image batches (N, 3, H, W) in [-1, 1]; mCSD / mOCD need a generator (``mcsd``).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

_METRICS: dict[str, Callable] = {}
PAIRWISE = ("psnr", "ssim", "ms_ssim", "swd")
"""Metrics of two image sets ``(fake, real)`` -> a number (higher is better except SWD)."""


def register_metric(name: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        _METRICS[name] = fn
        return fn
    return deco


def _load() -> None:
    """Import every module of this package (each registers its metrics), once."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def list_metrics() -> list[str]:
    _load()
    return sorted(_METRICS)


def get_metric(name: str) -> Callable:
    _load()
    if name not in _METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]


def evaluate(names: list[str] | tuple[str, ...], fake: Any, real: Any) -> dict[str, float]:
    """The :data:`PAIRWISE` metrics ``names`` of ``fake`` against ``real`` ((N, 3, H, W) in
    [-1, 1] or uint8): one number each (SWD: the average over its pyramid levels)."""
    out = {}
    for name in names:
        if name not in PAIRWISE:
            raise KeyError(f"metric {name!r} does not compare two image sets; use one of {', '.join(PAIRWISE)}")
        value = get_metric(name)(real, fake) if name == "swd" else get_metric(name)(fake, real)
        out[name] = float(value["SWDx1e3_avg"] if isinstance(value, dict) else value)
    return out
