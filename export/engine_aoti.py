"""AOTInductor: one graph of a bundle -> a ``.pt2`` package for this machine.

``torch.export`` with a dynamic batch (``Dim``, example batch >= 2: an example of batch 1
lets export specialise the axis to 1) and ``torch._inductor.aoti_compile_and_package``.
FP16 / BF16 packages hold reduced-precision weights and cast inputs in / outputs out, so
the package still takes and returns FP32; normalisation layers stay FP32 (their
statistics are what reduced precision damages first). On GPU the weights and 4-D inputs
are channels-last.

Known trap: inductor's attention pattern matcher (``fuse_attention._sfdp_replacement``)
can fail on a graph whose batch was specialised to 1. We keep the batch dynamic, and for
graphs with attention (softmax / scaled_dot_product_attention nodes) also compile with
``torch._inductor.config.pattern_matcher = False``; convolution-only graphs keep it on.
"""
from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdk.engines import BatchProfile
from train.models.spec import GraphSpec

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
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


def has_attention(program: torch.export.ExportedProgram) -> bool:
    """True if the exported graph has softmax or scaled-dot-product attention nodes."""
    return any(node.op == "call_function" and ("softmax" in str(node.target) or "scaled_dot_product" in str(node.target))
               for node in program.graph.nodes)


def export_program(module: nn.Module, examples: tuple[torch.Tensor, ...], batch: BatchProfile) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch axis on every input."""
    dim = torch.export.Dim("batch", min=1, max=max(batch.max, 2))
    dynamic: tuple = tuple({0: dim} for _ in examples)
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):  # forward(*inputs) binds one tuple
        dynamic = (dynamic,)
    return torch.export.export(module, examples, dynamic_shapes=dynamic)


def compile_package(spec: GraphSpec, out: str | Path, *, precision: str, batch: BatchProfile,
                    device: str = "cpu") -> dict[str, Any]:
    """Compile ``spec`` (folded, eval, FP32) into the package ``out``; returns build notes."""
    dev = torch.device(device)
    if dev.type == "cpu" and precision in ("fp16", "tf32"):
        raise ValueError(f"AOTInductor {precision} needs a GPU; on CPU build fp32 or bf16")
    module: nn.Module = copy.deepcopy(spec.module).to(dev).eval()  # the FP32 reference stays intact
    if precision in _DTYPES:
        module = ReducedPrecision(module, _DTYPES[precision], channels_last=dev.type == "cuda").eval()
    elif dev.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    example_batch = min(max(batch.opt, 2), max(batch.max, 2))
    examples = tuple(x.to(dev) for x in spec.examples(example_batch, seed=1234))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
    with torch.no_grad():
        program = export_program(module, examples, batch)
    attention = has_attention(program)
    patch = {"pattern_matcher": False} if attention else {}
    with torch._inductor.config.patch(patch):
        torch._inductor.aoti_compile_and_package(program, package_path=str(out))
    return {"attention_pattern_matcher": "disabled (graph has attention)" if attention else "enabled",
            "channels_last": dev.type == "cuda", "example_batch": example_batch}
