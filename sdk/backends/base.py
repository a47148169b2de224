"""The one contract every backend implements (after Polygraphy's runners).

A runner is built for one graph of one bundle, reports its inputs, runs named numpy
feeds to named numpy outputs, and times its last inference. Feeds are cast to the
dtypes the manifest declares (class ids int32, edge maps uint8, the rest float32);
``outputs`` picks the outputs to return (e.g. only the 8-bit image), so a backend
need not copy the others back to the host.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from ..bundle import Bundle
from ..manifest import TensorSpec


class Runner(ABC):
    """``run(feeds) -> outputs`` over one graph of a bundle.

    Optional, for editing sessions (:mod:`sdk.editor` looks it up with ``getattr``):
    ``edit_session(feeds, outputs) -> session``, the session holding ``last`` (the outputs of
    ``feeds``), ``reason`` (why its updates are full passes, or None), ``update(feeds) ->
    (outputs, stats)`` with ``stats`` a dict of ``incremental`` (bool), ``reason`` (str),
    ``changed`` and ``recomputed`` (fractions), ``ms``; and ``close()``. The torch runner has it.
    """

    name: ClassVar[str]

    def __init__(self, bundle: Bundle, graph: str = "model") -> None:
        self.bundle = bundle
        self.graph_name = graph
        self.graph_info = bundle.graph(graph)
        self.last_inference_ms: float = float("nan")

    @property
    def inputs(self) -> list[TensorSpec]:
        """The graph's inputs as the manifest declares them (name, kind, shape, dtype)."""
        return list(self.graph_info.inputs)

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.graph_info.outputs]

    def run(self, feeds: dict[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the graph on feeds keyed by input name; returns ``outputs`` (default: all)."""
        expected = {m.name: m.dtype for m in self.inputs}
        if set(feeds) != set(expected):
            raise KeyError(f"graph {self.graph_name!r} takes inputs {sorted(expected)}, got {sorted(feeds)}")
        names = list(outputs) if outputs is not None else self.output_names
        unknown = sorted(set(names) - set(self.output_names))
        if unknown:
            raise KeyError(f"graph {self.graph_name!r} has outputs {self.output_names}, not {unknown}")
        start = time.perf_counter()
        out = self._run(self._cast(feeds, expected), names)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def _cast(self, feeds: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
        """Host arrays as contiguous arrays of the declared dtypes (backends that take
        device tensors override this)."""
        return {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in feeds.items()}

    @abstractmethod
    def _run(self, feeds: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        ...

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Free what the runner holds (sessions, device memory); it cannot run afterwards."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
