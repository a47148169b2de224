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

from sdk.export.engine_records import BatchProfile
from sdk.train.deploy.precision import ReducedPrecision
from sdk.train.models.spec import GraphSpec

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
