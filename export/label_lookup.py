"""Convolutions over one-hot label maps as table lookups, for the exported graphs.

A k x k convolution over a one-hot map with C classes spends ``C * k * k`` multiply-adds
per output value, all but ``k * k`` of them on zeros. The lookup gathers, for every
kernel tap, the weight vector of the class under the tap and sums the ``k * k`` vectors:
the same sum without the zero terms (float rounding aside: measured parity ~1e-6).
SPADE-style generators run one such convolution per normalisation layer on the full
label map, so the saving is large where classes are many (ADE20K, COCO-Stuff: 151 and
184 channels) and small where they are few (Cityscapes: 35); below
``MIN_CLASSES`` the convolution is kept (see the measurements in the README).

The graph reads the class id off the one-hot channels with a 1x1 convolution (weights
``0, 1, ..., C-1``, and a second output counting the set channels): reductions over the
channel axis (``ArgMax``, ``ReduceMax``) run strided in onnxruntime: 110 ms against
6 ms for the 1x1 convolution on a 151x256x256 map. Pixels whose one-hot channels are all
zero read a zero row, as the convolution would. The result equals the convolution only
for one-hot (or all-zero) inputs, which is what the ``label`` input of every graph is
(``train.models.spec``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.models.layers.onehot import one_hot_channels

# Fewest one-hot channels for which the lookup replaces the convolution (see module doc).
MIN_CLASSES = 64


class OneHotLookupConv(nn.Module):
    """Drop-in replacement of an ``nn.Conv2d`` whose input channels ``[start, stop)`` are
    one-hot: a gather per kernel tap for those channels, a convolution for the rest."""

    def __init__(self, conv: nn.Conv2d, start: int, stop: int) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise ValueError("the one-hot lookup needs groups=1, dilation=1 and numeric zero padding; "
                             f"got {conv}")
        weight = conv.weight.detach()
        self.classes = stop - start
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.start, self.stop = start, stop
        table = weight[:, start:stop].permute(1, 2, 3, 0)  # (C, kh, kw, out)
        zero_row = table.new_zeros(1, *table.shape[1:])  # read where no class is set (and in padding)
        self.register_buffer("table", torch.cat([table, zero_row]).contiguous())
        reader = weight.new_zeros(2, conv.in_channels, 1, 1)  # (class id, set channels) per pixel
        reader[0, start:stop, 0, 0] = torch.arange(stop - start, dtype=weight.dtype)
        reader[1, start:stop, 0, 0] = 1
        self.register_buffer("reader", reader)
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.register_buffer("bias", bias)
        dense = torch.cat([weight[:, :start], weight[:, stop:]], 1)
        self.dense: nn.Conv2d | None = None
        if dense.shape[1]:
            self.dense = nn.Conv2d(dense.shape[1], weight.shape[0], conv.kernel_size, conv.stride,
                                   conv.padding, bias=False)
            self.dense.weight.data.copy_(dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        read = F.conv2d(x, self.reader)
        ids = read[:, 0].round().long().clamp(0, self.classes - 1)
        ids = torch.where(read[:, 1] > 0.5, ids, self.classes)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ids = F.pad(ids, (pw, pw, ph, ph), value=self.classes)
        out_h = (ids.shape[1] - kh) // sh + 1
        out_w = (ids.shape[2] - kw) // sw + 1
        out = None
        for dy in range(kh):
            for dx in range(kw):
                tap = ids[:, dy:dy + sh * (out_h - 1) + 1:sh, dx:dx + sw * (out_w - 1) + 1:sw]
                term = F.embedding(tap, self.table[:, dy, dx])  # (N, out_h, out_w, out)
                out = term if out is None else out + term
        out = out.permute(0, 3, 1, 2)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        if self.dense is not None:
            out = out + self.dense(torch.cat([x[:, :self.start], x[:, self.stop:]], 1))
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
