"""Convolutions over one-hot label maps as table lookups, for the exported graphs.

A k x k convolution over a one-hot map with C classes spends ``C * k * k`` multiply-adds
per output value, all but ``k * k`` of them on zeros. The lookup gathers, for every
kernel tap, the weight vector of the class under the tap and sums the ``k * k`` vectors:
the same sum without the zero terms (float rounding aside: measured parity ~1e-6).
SPADE-style generators run one such convolution per normalisation layer on the full
label map, so the saving is large where classes are many (ADE20K, COCO-Stuff: 151 and
183 classes) and small where they are few (Cityscapes: 35); below ``MIN_CLASSES`` the
convolution is kept (see the measurements in docs/bundles.md).

The lookup reads the class ids of a :class:`~train.models.layers.label_map.LabelMap`
(the graphs' ``label`` input is ids): no one-hot is ever built for it. Channels of the
convolution that are not one-hot (OASIS' noise, an instance-edge map) still go through
a convolution. Padding reads a zero row, as the convolution reads zeros.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.label_map import LabelMap
from sdk.train.models.layers.onehot import one_hot_channels

# Fewest one-hot channels for which the lookup replaces the convolution (see module doc).
MIN_CLASSES = 64


class OneHotLookupConv(nn.Module):
    """Drop-in replacement of an ``nn.Conv2d`` whose input channels ``[start, stop)`` are
    one-hot: a gather per kernel tap for those channels, a convolution for the rest.
    It reads a :class:`LabelMap` (``forward_label``), whose layout must match the span."""

    def __init__(self, conv: nn.Conv2d, start: int, stop: int) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise ValueError("the one-hot lookup needs groups=1, dilation=1 and numeric zero padding; "
                             f"got {conv}")
        weight = conv.weight.detach()
        self.classes = stop - start
        self.in_channels = conv.in_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.start, self.stop = start, stop
        table = weight[:, start:stop].permute(2, 3, 1, 0)  # (kh, kw, C, out)
        zero_row = table.new_zeros(*table.shape[:2], 1, table.shape[3])  # read in the padding
        self.register_buffer("table", torch.cat([table, zero_row], 2).contiguous())
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.register_buffer("bias", bias)
        dense = torch.cat([weight[:, :start], weight[:, stop:]], 1)
        self.dense: nn.Conv2d | None = None
        if dense.shape[1]:
            self.dense = nn.Conv2d(dense.shape[1], weight.shape[0], conv.kernel_size, conv.stride,
                                   conv.padding, bias=False)
            self.dense.weight.data.copy_(dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError("a label lookup reads class ids: call it through "
                        "sdk.train.models.layers.label_map.read_label with a LabelMap")

    def forward_label(self, seg: LabelMap) -> torch.Tensor:
        if seg.span != (self.start, self.stop) or seg.shape[1] != self.in_channels:
            raise ValueError(f"label lookup for one-hot channels [{self.start}, {self.stop}) of "
                             f"{self.in_channels} got a label map laid out as {seg.span} of {seg.shape[1]}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ids = F.pad(seg.ids, (pw, pw, ph, ph), value=self.classes)
        out_h = (ids.shape[1] - kh) // sh + 1
        out_w = (ids.shape[2] - kw) // sw + 1
        table = self.table
        out = None
        for dy in range(kh):
            for dx in range(kw):
                tap = ids[:, dy:dy + sh * (out_h - 1) + 1:sh, dx:dx + sw * (out_w - 1) + 1:sw]
                term = F.embedding(tap, table[dy, dx])  # (N, out_h, out_w, out)
                out = term if out is None else out + term
        out = out.permute(0, 3, 1, 2)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        if self.dense is not None:
            out = out + self.dense(seg.extras(self.dense.weight.dtype))
        return out


def use_label_lookup(model: nn.Module, min_classes: int = MIN_CLASSES) -> int:
    """Replace, in place, every marked convolution with at least ``min_classes`` one-hot
    input channels by a :class:`OneHotLookupConv`. Returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            span = one_hot_channels(child)
            if span is not None and span[1] - span[0] >= min_classes:
                setattr(parent, name, OneHotLookupConv(child, *span))
                count += 1
    return count
