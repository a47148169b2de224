"""Reduced precision (FP16 / BF16) behind an FP32 interface, normalisation layers kept FP32:
the torch runner and AOTInductor packages run networks this way."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def is_norm(m: nn.Module) -> bool:
    """A normalisation layer: a torch norm, or a leaf module named like one (``PixelNorm``)."""
    return isinstance(m, _NORMS) or (not any(True for _ in m.children()) and "norm" in type(m).__name__.lower())


class ReducedPrecision(nn.Module):
    """``module`` in ``dtype`` behind an FP32 interface; normalisation layers kept FP32.

    Float inputs are cast to ``dtype`` (channels-last where 4-D and asked for) and float
    outputs back to FP32; integer inputs (class ids, edge maps) and outputs (8-bit
    images) pass unchanged."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, channels_last: bool = False) -> None:
        super().__init__()
        self.module = module.to(dtype)
        self.dtype = dtype
        self.channels_last = channels_last
        for m in module.modules():
            if is_norm(m):
                m.float()
                m.register_forward_pre_hook(lambda _m, args: tuple(a.float() if torch.is_tensor(a) else a for a in args))
                m.register_forward_hook(lambda _m, _args, out, dtype=dtype: out.to(dtype))
        if channels_last:
            self.module.to(memory_format=torch.channels_last)

    def forward(self, *inputs: torch.Tensor) -> Any:
        cast = []
        for x in inputs:
            if x.is_floating_point():
                x = x.to(self.dtype)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
            cast.append(x)
        out = self.module(*cast)

        def back(o: torch.Tensor) -> torch.Tensor:
            return o.float() if o.is_floating_point() else o
        return tuple(back(o) for o in out) if isinstance(out, tuple) else back(out)
