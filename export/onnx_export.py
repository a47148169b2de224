"""torch -> ONNX for one :class:`GraphSpec`, with the checks every export must pass.

Dynamic batch: the dynamo exporter fixes the batch axis to 1 when the example has
batch 1, so we export with a batch-2 example and a named ``torch.export.Dim``.
Opset 20 by default (dynamo at opset 17 writes an invalid Split); opset 23 makes
``scaled_dot_product_attention`` a native ONNX ``Attention`` node.
"""
from __future__ import annotations

import inspect
import io
import logging
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Iterator

import onnx
import torch

from sdk.export.parity import (
    PARITY_LAYOUTS,
    PARITY_LIMIT,
    compare_outputs,
    reference_outputs,
)
from sdk.train.models.spec import GraphSpec

DEFAULT_OPSET = 20
EXPORT_BATCH = 2


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter about its own internals (warnings, prints, and the
    "torchvision is not installed" log lines: we need none of its ops)."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def export_onnx(graph: GraphSpec, path: str | Path, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export ``graph`` (already folded, eval mode) to ``path`` and run ``onnx.checker``."""
    path = Path(path)
    names_in = [s.name for s in graph.inputs]
    names_out = [s.name for s in graph.outputs]
    if len(set(names_in + names_out)) != len(names_in) + len(names_out):
        raise ValueError(f"graph tensor names must be unique; inputs {names_in}, outputs {names_out}")
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic_shapes: tuple = tuple({0: batch} for _ in graph.inputs)
    params = inspect.signature(graph.module.forward).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):  # forward(*inputs) binds one tuple
        dynamic_shapes = (dynamic_shapes,)
    examples = graph.examples(EXPORT_BATCH, seed=1234)
    with _quiet_exporter():
        program = torch.onnx.export(
            graph.module, examples, dynamo=True, opset_version=opset,
            input_names=names_in, output_names=names_out,
            dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)
    program.optimize()
    model = program.model_proto
    # Name the dynamic batch axis "batch" in the graph so every runtime reports it alike.
    for value in list(model.graph.input) + list(model.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        if dim0.dim_param or not dim0.HasField("dim_value") or dim0.dim_value != EXPORT_BATCH:
            dim0.dim_param = "batch"
        else:
            raise RuntimeError(f"export fixed the batch axis of {value.name!r} to {dim0.dim_value}; "
                               "the graph must keep a dynamic batch")
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return model


def onnx_parity(graph: GraphSpec, path: str | Path, *, batches: tuple[int, ...] = (1, 2),
                seed: int = 0, limit: float | None = PARITY_LIMIT) -> tuple[dict[str, float], int]:
    """Relative L2 error of onnxruntime (CPU) vs the one-hot network in PyTorch FP32, per
    batch size and label layout (``{"batch_1": e, "blocks_batch_1": e, ...}``, worst
    output; see :data:`PARITY_LAYOUTS`), and the worst 8-bit output difference in levels.

    ``graph`` is the reference (unmodified network); the ONNX file may hold lookups and
    8-bit outputs. Raises :class:`ParityError` when a figure exceeds ``limit``.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    report: dict[str, float] = {}
    levels = 0
    for layout, key in PARITY_LAYOUTS.items():
        for b in batches:
            examples = graph.examples(b, seed=seed + b, layout=layout)
            feeds = {s.name: x.numpy() for s, x in zip(graph.inputs, examples)}
            got = dict(zip(names, sess.run(names, feeds)))
            err, lv = compare_outputs(reference_outputs(graph, examples), got,
                                      f"{Path(path).name} at batch {b}, {layout} labels (onnxruntime)", limit)
            report[key.format(b=b)] = err
            levels = max(levels, lv)
    return report, levels
