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



def _convolution_ops() -> set:
    aten = torch.ops.aten
    return {aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.conv_transpose1d.default,
            aten.conv_transpose2d.input, aten.conv_transpose3d.input, aten.convolution.default,
            aten._convolution.default}


class cpu_fp16_convolutions:  # noqa: N801 (a context manager, named like torch's own)
    """FP16 on CPU, for testing the FP16 path: convolutions whose input, weight and bias
    are all FP16 CPU tensors run in FP32 and round their output to FP16.

    CPUs without FP16 convolution kernels (most) fall back to a naive loop that made CI-size
    networks 25-100x slower than in FP32. This does what a GPU does with FP16 (FP16 values
    in, products accumulated in FP32 by cuDNN on tensor cores, the output rounded to FP16).
    Every other op, and any convolution whose dtypes disagree (the bug an FP16 test is
    there to catch), runs as it is. Eager mode only (``torch.compile`` does not see it).
    """

    def __enter__(self) -> "cpu_fp16_convolutions":
        from torch.utils._python_dispatch import TorchDispatchMode

        convs = _convolution_ops()

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                if func in convs and _all_cpu_half(args[:3]):
                    x, w, b = args[:3]
                    out = func(x.float(), w.float(), None if b is None else b.float(), *args[3:], **(kwargs or {}))
                    return out.half()
                return func(*args, **(kwargs or {}))

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)


def _all_cpu_half(tensors: tuple) -> bool:
    if len(tensors) < 3:
        return False
    x, w, b = tensors
    return (isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dtype == torch.float16
            and isinstance(w, torch.Tensor) and w.dtype == torch.float16
            and (b is None or (isinstance(b, torch.Tensor) and b.dtype == torch.float16)))
