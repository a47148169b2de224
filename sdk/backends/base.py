"""The one contract every backend implements (after Polygraphy's runners).

A runner is built for one graph of one bundle, reports its inputs, runs named numpy
feeds to named numpy outputs, and times its last inference.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..bundle import Bundle


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int | str | None, ...]  # str / None: dynamic axis
    dtype: str


class Runner(ABC):
    """``run(feeds) -> outputs`` over one graph of a bundle."""

    name: ClassVar[str]

    def __init__(self, bundle: Bundle, graph: str = "model") -> None:
        self.bundle = bundle
        self.graph_name = graph
        self.graph_info = bundle.graph(graph)
        self.last_inference_ms: float = float("nan")

    @property
    def inputs(self) -> list[TensorMeta]:
        """Input metadata as the manifest declares it."""
        return [TensorMeta(s["name"], tuple(s["shape"]), "float32") for s in self.graph_info["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [s["name"] for s in self.graph_info["outputs"]]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; feeds are float32 arrays keyed by input name."""
        expected = {m.name for m in self.inputs}
        if set(feeds) != expected:
            raise KeyError(f"graph {self.graph_name!r} takes inputs {sorted(expected)}, got {sorted(feeds)}")
        start = time.perf_counter()
        out = self._run({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ...

    def describe(self) -> str:
        return self.name
