"""The contract between a network and the rest of the pipeline.

Every registered model is a :class:`SynthesisModel`. It describes the graphs it
deploys (``graphs()``) with named, typed tensors; export, the bundle manifest and
the SDK runtime read nothing else. Input ``kind`` values form a small vocabulary
the SDK knows how to fill:

===============  ==========================================================
kind             meaning (shape; ``None`` marks the dynamic batch axis)
===============  ==========================================================
label            one-hot label map, float32 (N, C, H, W)
instance_edge    instance boundaries as SPADE computes them, (N, 1, H, W)
latent           noise / style vector (N, D); attrs["distribution"] is
                 "normal" or "sphere" (normalised to the unit sphere in-graph
                 or by the caller, see attrs)
codes            per-class latent codes (N, C, D) (GroupDNet)
image            RGB image in [-1, 1], (N, 3, H, W)
mu / logvar      encoder outputs, same shape as the latent they describe
===============  ==========================================================
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

TASKS = ("semantic", "unconditional", "image2image")


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input or output."""

    name: str
    kind: str
    shape: tuple[int | None, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    def example(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """A seeded example tensor of this spec, used for export and parity."""
        shape = tuple(batch if s is None else s for s in self.shape)
        if self.kind == "label":
            n, c, h, w = shape
            ids = torch.randint(0, c, (n, h, w), generator=generator)
            return torch.nn.functional.one_hot(ids, c).permute(0, 3, 1, 2).float()
        if self.kind == "instance_edge":
            return (torch.rand(shape, generator=generator) > 0.9).float()
        if self.kind == "image":
            return torch.rand(shape, generator=generator) * 2 - 1
        return torch.randn(shape, generator=generator)


@dataclass
class GraphSpec:
    """One deployable graph: ``module(*inputs) -> output or tuple of outputs``."""

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def examples(self, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        return tuple(spec.example(batch, g) for spec in self.inputs)


class SynthesisModel(nn.Module):
    """Base of every registered network.

    Subclasses set ``family`` and ``task``, keep their config dataclass in
    ``self.config`` and implement :meth:`graphs`. ``graphs()["model"]`` is the
    synthesis graph; other entries (``"encoder"``) are optional.
    """

    family: ClassVar[str] = ""
    task: ClassVar[str] = "semantic"

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def graphs(self) -> dict[str, GraphSpec]:  # pragma: no cover - abstract
        raise NotImplementedError

    def official_parts(self) -> dict[str, nn.Module]:
        """Official checkpoint part name (``"net_G"``...) -> submodule that loads it strictly."""
        raise NotImplementedError(f"{type(self).__name__} has no official checkpoint layout")

    def deploy_info(self) -> dict[str, Any]:
        """Facts the SDK needs beyond the graphs (classes, resolution, palette)."""
        cfg = self.config
        return {
            "num_classes": getattr(cfg, "num_classes", None),
            "resolution": [cfg.height, cfg.width],
            "palette": getattr(cfg, "palette", None),
        }
