"""The label map inside a network: class ids, one-hot only where a layer needs it.

Training feeds generators a float tensor ``cat(before, one_hot(ids), after)`` of shape
(N, B + C + A, H, W) (``before``: OASIS' 3D noise; ``after``: the instance-edge map),
as the papers' code does. Deployed graphs take the class ids themselves and wrap them
in a :class:`LabelMap`, which stands for the same tensor without building it:

* resizing (every SPADE layer reads the label map at its own resolution) works on the
  one-channel id map, not on C float channels, and happens once per resolution;
* the one-hot is made on the device, once per resolution and dtype, where a plain
  convolution reads it (tensor cores run a one-hot convolution over tens of classes
  in microseconds);
* a convolution exported as a table lookup (``export.label_lookup``) reads the ids
  directly and never builds the one-hot.

Generators accept either form through the helpers below, so training, official
checkpoints and deployment share one network; both forms give the same numbers
(nearest resizing commutes with one-hot encoding).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LabelMap:
    """Integer class ids (N, H, W) plus float channels in front of / behind the one-hot block.

    ``before`` comes in three forms: (N, B, H, W) values; spatially constant, (N, B, 1, 1)
    (OASIS' noise, the same at every pixel), broadcast only where a layer reads it; or per
    class, ``before_by_class`` (N, C, B) (OASIS' noise drawn per class): each pixel reads
    the row of the class under it, gathered from the ids at each resolution (nearest
    resizing commutes with the gather, so this is the resized full-size map). Values are
    resized and encoded lazily and memoised, so the layers of one resolution share the work.
    """

    def __init__(self, ids: torch.Tensor, num_classes: int, *, before: torch.Tensor | None = None,
                 after: torch.Tensor | None = None, before_by_class: torch.Tensor | None = None) -> None:
        if ids.dim() != 3 or ids.is_floating_point():
            raise TypeError(f"LabelMap takes (N, H, W) integer class ids, got {tuple(ids.shape)} {ids.dtype}")
        if before is not None and before_by_class is not None:
            raise ValueError("give before or before_by_class, not both")
        if before_by_class is not None and (before_by_class.dim() != 3 or before_by_class.shape[1] != num_classes):
            raise ValueError(f"before_by_class must be (N, {num_classes}, B), got {tuple(before_by_class.shape)}")
        self.ids = ids
        self.num_classes = num_classes
        self.before = before
        self.before_by_class = before_by_class
        self.after = after
        self._resized: dict[tuple[int, int], LabelMap] = {}
        self._dense: dict[torch.dtype, torch.Tensor] = {}
        self._before_map: dict[torch.dtype, torch.Tensor] = {}

    @property
    def size(self) -> tuple[int, int]:
        return int(self.ids.shape[1]), int(self.ids.shape[2])

    @property
    def span(self) -> tuple[int, int]:
        """The one-hot block's ``[start, stop)`` channels in the dense tensor."""
        if self.before_by_class is not None:
            start = int(self.before_by_class.shape[2])
        else:
            start = 0 if self.before is None else int(self.before.shape[1])
        return start, start + self.num_classes

    @property
    def shape(self) -> torch.Size:
        """Shape of the dense tensor this map stands for, (N, B + C + A, H, W)."""
        extra = 0 if self.after is None else int(self.after.shape[1])
        return torch.Size((self.ids.shape[0], self.span[1] + extra, *self.size))  # batch stays symbolic

    def at(self, size: tuple[int, int]) -> "LabelMap":
        """This map resized to ``size`` = (H, W) with nearest sampling, as ``F.interpolate``."""
        size = (int(size[0]), int(size[1]))
        if size == self.size:
            return self
        if size not in self._resized:
            before = self.before
            if before is not None and before.shape[-2:] != (1, 1):
                before = nearest(before, size)
            after = None if self.after is None else nearest(self.after, size)
            self._resized[size] = LabelMap(nearest(self.ids, size), self.num_classes, before=before, after=after,
                                           before_by_class=self.before_by_class)
        return self._resized[size]

    def one_hot(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, C, H, W) one-hot of the ids in ``dtype``, made where the ids are (the device)."""
        classes = torch.arange(self.num_classes, dtype=self.ids.dtype, device=self.ids.device)
        return (self.ids.unsqueeze(1) == classes.view(1, -1, 1, 1)).to(dtype)

    def before_map(self, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """The ``before`` channels at the map's size, (N, B, H, W), or None (memoised)."""
        if self.before is None and self.before_by_class is None:
            return None
        if dtype not in self._before_map:
            if self.before_by_class is not None:
                self._before_map[dtype] = gather_by_class(self.ids, self.before_by_class.to(dtype))
            else:
                h, w = self.size
                self._before_map[dtype] = self.before.to(dtype).expand(-1, -1, h, w)
        return self._before_map[dtype]

    def extras(self, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """``cat(before, after)`` at the map's size: the channels that are not one-hot."""
        parts = [x for x in (self.before_map(dtype), None if self.after is None else self.after.to(dtype))
                 if x is not None]
        return None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float tensor ``cat(before, one_hot(ids), after)`` training feeds (memoised)."""
        if dtype not in self._dense:
            parts = [x for x in (self.before_map(dtype), self.one_hot(dtype),
                                 None if self.after is None else self.after.to(dtype)) if x is not None]
            self._dense[dtype] = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return self._dense[dtype]

    def with_before(self, before: torch.Tensor) -> "LabelMap":
        """The same ids (and ``after``) with ``before`` channels, (N, B, H, W) or (N, B, 1, 1)."""
        return LabelMap(self.ids, self.num_classes, before=before, after=self.after)

    def with_before_by_class(self, table: torch.Tensor) -> "LabelMap":
        """The same ids (and ``after``) with ``before`` channels given per class, (N, C, B)."""
        return LabelMap(self.ids, self.num_classes, before_by_class=table, after=self.after)


def gather_by_class(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(N, H, W) class ids and a per-image table (N, C, B) -> (N, B, H, W), contiguous: each
    pixel takes its class's row (row ``n * C + id`` of the flattened table).

    The values are copied, never computed, so rows that are all equal give exactly the
    broadcast map (and a convolution reading it the same numbers: contiguous NCHW, as the
    broadcast map is made, since torch picks its kernel by memory layout). Two forms of the
    same copy, each the fast one where it runs (measured at 256x256, 151 classes, 64
    values, 2 threads): the exported graph gathers rows and transposes once (onnxruntime
    8.7 ms, its Gather along columns 106 ms); torch gathers columns of the transposed table
    (40 ms, its 4-D transpose copy 165 ms).
    """
    n, c, b = table.shape
    h, w = ids.shape[1], ids.shape[2]
    rows = ids + (torch.arange(n, dtype=ids.dtype, device=ids.device) * c).view(-1, 1, 1)
    if torch.onnx.is_in_onnx_export():
        return F.embedding(rows, table.reshape(-1, b)).permute(0, 3, 1, 2).contiguous()
    columns = table.permute(2, 0, 1).reshape(b, n * c)  # (B, N*C)
    out = torch.index_select(columns, 1, rows.reshape(-1)).view(b, n, h, w)
    return out.transpose(0, 1).contiguous()


def nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of (N, H, W) ids or (N, C, H, W) values to ``size``, with
    ``F.interpolate``'s index rule (source = floor(target * in / out)).

    An integer downscale is a strided slice (the same pixels, no arithmetic); anything
    else goes through ``F.interpolate``, ids as float32 (exact below 2**24 classes).
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = size
    if h % oh == 0 and w % ow == 0:
        return x[..., ::h // oh, ::w // ow]
    if x.dim() == 3:
        return F.interpolate(x.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).to(x.dtype)
    return F.interpolate(x, size=size, mode="nearest")


# -- what generators call ------------------------------------------------------------------
def label_input(label: torch.Tensor, num_classes: int, edge: torch.Tensor | None = None) -> "LabelMap | torch.Tensor":
    """A graph's ``label`` (and ``instance_edge``) input -> what a generator takes.

    Integer ids (N, H, W) and an (N, H, W) uint8/bool edge map give a :class:`LabelMap`
    (deployment). A float one-hot (N, C, H, W) and a float edge map (N, 1, H, W) give
    their concatenation (training, and the parity reference: "the one-hot network").
    """
    if label.is_floating_point():
        if label.dim() != 4:
            raise ValueError(f"a float label must be one-hot (N, C, H, W), got {tuple(label.shape)}")
        if edge is None:
            return label
        edge = edge.to(label.dtype)
        return torch.cat([label, edge.unsqueeze(1) if edge.dim() == 3 else edge], 1)
    if edge is not None:
        # cast first: TensorRT lets a uint8 network input feed a Cast layer only
        edge = edge.float()
        edge = edge.unsqueeze(1) if edge.dim() == 3 else edge
    return LabelMap(label, num_classes, after=edge)


def resize_label(seg: "LabelMap | torch.Tensor", size: tuple[int, int] | torch.Size) -> "LabelMap | torch.Tensor":
    """``seg`` at ``size`` with nearest sampling (a no-op at its own size)."""
    size = (int(size[0]), int(size[1]))
    if isinstance(seg, LabelMap):
        return seg.at(size)
    if tuple(seg.shape[-2:]) == size:
        return seg
    return F.interpolate(seg, size=size, mode="nearest")


def dense_label(seg: "LabelMap | torch.Tensor", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The float label tensor of ``seg`` (a tensor is returned as it is)."""
    return seg.dense(dtype) if isinstance(seg, LabelMap) else seg


def conv_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first convolution: what a dense label map fed to it must
    be (FP16 / BF16 under ``ReducedPrecision``, whose normalisation layers stay FP32)."""
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.weight.dtype
    return torch.float32


def read_label(module: nn.Module, seg: "LabelMap | torch.Tensor") -> torch.Tensor:
    """Apply a layer that reads the label map (a conv, or a Sequential starting with one).

    A table lookup (a module with ``forward_label``) reads a :class:`LabelMap`'s ids;
    any other layer gets the dense tensor in its weight's dtype.
    """
    if isinstance(module, nn.Sequential):
        x = read_label(module[0], seg)
        for layer in list(module)[1:]:
            x = layer(x)
        return x
    if isinstance(seg, LabelMap):
        if hasattr(module, "forward_label"):
            return module.forward_label(seg)
        weight = getattr(module, "weight", None)
        return module(seg.dense(weight.dtype if isinstance(weight, torch.Tensor) else torch.float32))
    return module(seg)
