"""The contract between a network and the rest of the pipeline.

Every registered model is a :class:`SynthesisModel`. It describes the graphs it
deploys (``graphs()``) with named, typed tensors: :class:`sdk.manifest.TensorSpec`, the one
tensor description export, the bundle manifest and the SDK runtime share, whose ``kind``
is one of :class:`sdk.manifest.Kind` (the vocabulary the SDK knows how to fill: class ids,
instance edges, latents, per-class codes, images, 8-bit images, encoder outputs).

Why int32 class ids: every runtime we target reads it natively (onnxruntime's Gather
and Equal, TensorRT's I/O and elementwise layers, torch's embedding), it holds any
class count (uint8 stops at 256), and at 4 bytes a pixel a 1024x2048 map is 8 MB against
302 MB for the float one-hot of its 36 channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from sdk.manifest import TASKS, Kind, TensorSpec

__all__ = ["EDGE_DTYPE", "LABEL_DTYPE", "TASKS", "GraphSpec", "Kind", "SynthesisModel", "TensorSpec", "class_edges",
           "edge_spec", "example_tensor", "label_spec", "one_hot_input", "to_uint8_image"]

LABEL_DTYPE = "int32"
EDGE_DTYPE = "uint8"
_TORCH_DTYPES = {"float32": torch.float32, "int32": torch.int32, "uint8": torch.uint8}


def example_tensor(spec: TensorSpec, batch: int, generator: torch.Generator, layout: str = "random") -> torch.Tensor:
    """A seeded example tensor of ``spec``, used for export and parity.

    ``layout`` shapes label maps: ``"random"`` draws every pixel's class independently,
    ``"blocks"`` draws one class per block of about 1/8 of the map's side, as real label
    maps are large uniform regions (where reductions over a plane drift most).
    Broadcast ``codes`` (OASIS) are one vector per image given to every class with
    ``"random"`` (as trained and as seeds draw them; normalisation statistics are
    calibrated on these) and a vector per class with ``"blocks"`` (as a redrawn class
    makes them), so the parity checks cover both.
    """
    shape = spec.batch_shape(batch)
    if spec.kind == Kind.CODES and spec.attrs.get("broadcast") and layout == "random":
        n, c, d = shape
        return torch.randn((n, d), generator=generator)[:, None].expand(n, c, d).contiguous()
    if spec.kind == Kind.LABEL:
        classes = spec.attrs["num_classes"]
        if layout == "blocks":
            n, h, w = shape
            bh, bw = max(h // 8, 1), max(w // 8, 1)
            coarse = torch.randint(0, classes, (n, -(-h // bh), -(-w // bw)), generator=generator)
            ids = coarse.repeat_interleave(bh, 1).repeat_interleave(bw, 2)[:, :h, :w]
        elif layout == "random":
            ids = torch.randint(0, classes, shape, generator=generator)
        else:
            raise ValueError(f"unknown example layout {layout!r}; use 'random' or 'blocks'")
        return ids.to(_TORCH_DTYPES[spec.dtype])
    if spec.kind == Kind.INSTANCE_EDGE:
        return (torch.rand(shape, generator=generator) > 0.9).to(_TORCH_DTYPES[spec.dtype])
    if spec.kind == Kind.IMAGE:
        return torch.rand(shape, generator=generator) * 2 - 1
    return torch.randn(shape, generator=generator)


def one_hot_input(spec: TensorSpec, x: torch.Tensor) -> torch.Tensor:
    """An input in the form the papers' networks take: a label's ids as a float
    one-hot (N, C, H, W), an edge map as float (N, 1, H, W); others unchanged."""
    if spec.kind == Kind.LABEL:
        return torch.nn.functional.one_hot(x.long(), spec.attrs["num_classes"]).permute(0, 3, 1, 2).float()
    if spec.kind == Kind.INSTANCE_EDGE:
        return x.float().unsqueeze(1)
    return x


def class_edges(ids: torch.Tensor) -> torch.Tensor:
    """(N, H, W) ids -> (N, H, W) uint8 instance edges, by the SDK's one definition of
    SPADE's rule (``sdk.labels.instance_edges``)."""
    from sdk.labels import instance_edges

    return torch.from_numpy(instance_edges(ids.numpy()))


def label_spec(num_classes: int, height: int, width: int, name: str = "label") -> TensorSpec:
    """The ``label`` input: (N, H, W) int32 class ids in 0..num_classes-1."""
    return TensorSpec(name, Kind.LABEL, (None, height, width), {"num_classes": num_classes}, LABEL_DTYPE)


def edge_spec(height: int, width: int) -> TensorSpec:
    """The ``instance_edge`` input: (N, H, W) uint8, 1 on instance boundaries."""
    return TensorSpec("instance_edge", Kind.INSTANCE_EDGE, (None, height, width), {}, EDGE_DTYPE)


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, rounding as ``sdk.labels.to_image``."""
    return torch.clamp((x + 1) * 127.5 + 0.5, 0, 255).floor().to(torch.uint8).permute(0, 2, 3, 1)


class _WithUint8(nn.Module):
    """A graph module whose image outputs are also returned as 8-bit RGB."""

    def __init__(self, module: nn.Module, image_outputs: tuple[int, ...]) -> None:
        super().__init__()
        self.module = module
        self.image_outputs = image_outputs

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.module(*inputs)
        out = out if isinstance(out, tuple) else (out,)
        return (*out, *(to_uint8_image(out[i]) for i in self.image_outputs))


@dataclass
class GraphSpec:
    """One deployable graph: ``module(*inputs) -> output or tuple of outputs``."""

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def examples(self, batch: int, seed: int = 0, layout: str = "random") -> tuple[torch.Tensor, ...]:
        """Seeded inputs (:func:`example_tensor`). With ``layout="blocks"`` the instance
        edges are the label map's class boundaries, as the SDK feeds them by default."""
        g = torch.Generator().manual_seed(seed)
        out = [example_tensor(spec, batch, g, layout) for spec in self.inputs]
        kinds = [s.kind for s in self.inputs]
        if layout == "blocks" and Kind.INSTANCE_EDGE in kinds and Kind.LABEL in kinds:
            out[kinds.index(Kind.INSTANCE_EDGE)] = class_edges(out[kinds.index(Kind.LABEL)])
        return tuple(out)

    def as_one_hot(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """``inputs`` as the one-hot network takes them (:func:`one_hot_input`):
        fed to the same module, they give the parity reference of every export."""
        return tuple(one_hot_input(s, x) for s, x in zip(self.inputs, inputs))

    def with_uint8_outputs(self) -> "GraphSpec":
        """This graph with an ``<name>_u8`` output (N, H, W, 3) uint8 after every image output."""
        images = tuple(i for i, s in enumerate(self.outputs) if s.kind == Kind.IMAGE)
        extra = tuple(TensorSpec(f"{self.outputs[i].name}_u8", Kind.IMAGE_U8,
                                 (None, self.outputs[i].shape[2], self.outputs[i].shape[3], 3),
                                 {"of": self.outputs[i].name}, "uint8") for i in images)
        if not extra:
            return self
        return GraphSpec(_WithUint8(self.module, images), self.inputs, (*self.outputs, *extra))


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
        """Facts the SDK needs beyond the graphs (classes, resolution, palette, and the dataset
        whose label files the preset reads: its palette's name, or GroupDNet's layout)."""
        cfg = self.config
        palette = getattr(cfg, "palette", None)
        return {
            "num_classes": getattr(cfg, "num_classes", None),
            "resolution": [cfg.height, cfg.width],
            "palette": palette,
            "dataset": palette or getattr(cfg, "layout", None),
        }
