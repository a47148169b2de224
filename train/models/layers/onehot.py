"""Marking the convolutions that read a one-hot label map.

A convolution over a one-hot map multiplies by zero almost everywhere: per output pixel
it only needs, for each kernel tap, the weight column of the class under that tap. The
export replaces marked convolutions by that table lookup (``export.label_lookup``), which
computes the same numbers with a fraction of the work on CPUs. Training keeps the plain
convolution; the mark changes neither the parameters nor the state-dict keys.
"""
from __future__ import annotations

from torch import nn

ATTR = "one_hot_channels"


def mark_one_hot_input(conv: nn.Conv2d, start: int, stop: int) -> nn.Conv2d:
    """Declare that input channels ``[start, stop)`` of ``conv`` are a one-hot label map
    (at most one channel is 1 at each pixel, the others 0) and returns ``conv``.

    The other input channels may hold anything (an instance-edge map, noise, features).
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"only nn.Conv2d can be marked, got {type(conv).__name__}")
    if not 0 <= start < stop <= conv.in_channels:
        raise ValueError(f"one-hot channels [{start}, {stop}) do not fit {conv.in_channels} input channels")
    setattr(conv, ATTR, (start, stop))
    return conv


def one_hot_channels(conv: nn.Module) -> tuple[int, int] | None:
    """The ``[start, stop)`` one-hot input channels declared for ``conv``, or None."""
    return getattr(conv, ATTR, None)


def mark_spade_label_convs(module: nn.Module, start: int, stop: int) -> None:
    """Mark the label convolution (``mlp_shared[0]``) of every SPADE layer in ``module``."""
    from sdk.train.models.layers.norm import SPADE

    for m in module.modules():
        if isinstance(m, SPADE):
            mark_one_hot_input(m.mlp_shared[0], start, stop)
