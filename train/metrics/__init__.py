"""Quality metrics, one registry: ``get_metric(name)(...)``.

Each metric module registers its functions with :func:`register_metric`; import
this package to load them all.
"""
from __future__ import annotations

import importlib
from typing import Callable

_METRICS: dict[str, Callable] = {}
_MODULES: list[str] = ["image_quality", "swd", "mcsd"]  # metric modules, imported on first lookup


def register_metric(name: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        if name in _METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        _METRICS[name] = fn
        return fn
    return deco


def _load() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def list_metrics() -> list[str]:
    _load()
    return sorted(_METRICS)


def get_metric(name: str) -> Callable:
    _load()
    if name not in _METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]
