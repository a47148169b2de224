"""Post-training static INT8 quantization of a bundle's ONNX graph (onnxruntime, QDQ).

``quantize_graph`` calibrates activation ranges on label maps the bundle makes itself
(``export.calibration``) and writes a QDQ graph: QuantizeLinear / DequantizeLinear pairs
around the quantized operators, which onnxruntime fuses into int8 kernels (VNNI on this
CPU) and OpenVINO reads as int8 too (its low-precision transformations), so one
calibration serves both INT8 engines.

What is quantized: the weights and input activations of convolutions and matrix products
(``Conv``, ``ConvTranspose``, ``MatMul``, ``Gemm``): weights per output channel, int8,
symmetric; activations per tensor, uint8 (onnxruntime's fast u8 x s8 path), MinMax
ranges over the calibration set. Everything else stays float, by construction:

* the class-id path: the ``label`` input is int32 and never quantized; label lookups
  (``Gather`` on weight tables, ``export.label_lookup``) and the in-graph one-hot
  (``Equal`` / ``Cast``) are not quantized operators;
* normalisation statistics (``ReduceMean``, ``InstanceNormalization``,
  ``BatchNormalization``, ``Sqrt``...) and SPADE's modulation ``x * (1 + gamma) + beta``:
  not quantized operators;
* and, decided by measurement (:data:`KEEP_FLOAT` and the note of issue 13: PSNR against
  the FP32 graph with and without each exclusion), the nodes :func:`float_nodes` finds:
  ``last_conv``, the convolution that makes the image (its error lands on the output
  unfiltered) and ``attention``, the matrix products before and after a ``Softmax``
  (DP-SIMS' cross-attention: int8 scores flatten the softmax).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import onnx

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
KEEP_FLOAT = ("last_conv", "attention")
"""Node groups :func:`float_nodes` keeps in FP32 by default (see the module docstring)."""


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: node for node in model.graph.node for o in node.output}


def last_convs(model: onnx.ModelProto, outputs: Iterable[str] | None = None) -> list[str]:
    """Names of the convolutions nearest each float image output, walking back through
    the graph (activation, clamp, add...) until a ``Conv`` / ``ConvTranspose``."""
    producers = _producers(model)
    names = list(outputs) if outputs is not None else [o.name for o in model.graph.output
                                                       if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    found: list[str] = []
    for out in names:
        frontier, seen = [out], set()
        while frontier:
            tensor = frontier.pop(0)
            node = producers.get(tensor)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in ("Conv", "ConvTranspose"):
                if node.name not in found:
                    found.append(node.name)
                continue
            frontier.extend(node.input)
    return found


def attention_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the ``MatMul`` nodes that make a ``Softmax``'s input (scores) or read its
    output (the weighted sum), through shape-only and scaling nodes."""
    producers, consumers = _producers(model), _consumers(model)
    passthrough = {"Reshape", "Transpose", "Mul", "Div", "Add", "Cast", "Squeeze", "Unsqueeze", "Where"}
    found: list[str] = []
    for node in model.graph.node:
        if node.op_type != "Softmax":
            continue
        back = list(node.input[:1])
        for _ in range(6):
            nxt = []
            for t in back:
                p = producers.get(t)
                if p is None:
                    continue
                if p.op_type == "MatMul":
                    found.append(p.name)
                elif p.op_type in passthrough:
                    nxt.extend(p.input)
            back = nxt
        fwd = list(node.output)
        for _ in range(6):
            nxt = []
            for t in fwd:
                for c in consumers.get(t, []):
                    if c.op_type == "MatMul":
                        found.append(c.name)
                    elif c.op_type in passthrough:
                        nxt.extend(c.output)
            fwd = nxt
    return sorted(set(found))


def float_nodes(model: onnx.ModelProto, keep: Iterable[str] = KEEP_FLOAT) -> dict[str, list[str]]:
    """Group -> node names to leave in float (groups of :data:`KEEP_FLOAT`)."""
    unknown = sorted(set(keep) - set(KEEP_FLOAT))
    if unknown:
        raise ValueError(f"unknown keep-float groups {unknown}; choose from {', '.join(KEEP_FLOAT)}")
    groups: dict[str, list[str]] = {}
    if "last_conv" in keep:
        groups["last_conv"] = last_convs(model)
    if "attention" in keep:
        groups["attention"] = attention_matmuls(model)
    return groups


def name_nodes(model: onnx.ModelProto) -> int:
    """Give every unnamed node a unique name (the quantizer excludes nodes by name)."""
    taken = {n.name for n in model.graph.node if n.name}
    count = 0
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
            count += 1
    return count


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over an iterator of feed dicts."""

    def __init__(self, feeds: Iterator[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_graph(src: str | Path, dst: str | Path, feeds: Iterable[dict[str, np.ndarray]], *,
                   keep_float: Iterable[str] = KEEP_FLOAT, activation: str = "uint8",
                   ops: Sequence[str] | None = QUANTIZED_OPS) -> dict[str, Any]:
    """Write the INT8 QDQ graph of ``src`` to ``dst``, calibrated on ``feeds`` (batch-1 feed
    dicts). Returns notes for the engine record: what was quantized and what kept float.

    ``ops=None`` quantizes every operator type onnxruntime can (normalisation arithmetic,
    softmax, resize...): the variant the measurements in the module docstring reject."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    start = time.perf_counter()
    model = onnx.load(str(src))
    name_nodes(model)
    groups = float_nodes(model, keep_float)
    excluded = sorted({n for names in groups.values() for n in names})
    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation]
    items = list(feeds)
    # onnxruntime logs a warning to run its pre-processing (shape inference, graph
    # optimisation); our graphs were optimised and shape-inferred at export.
    root = logging.getLogger()
    level, root.level = root.level, max(root.level, logging.ERROR)
    try:
        quantize_static(model, str(dst), _Reader(iter(items)), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=None if ops is None else list(ops), per_channel=True, activation_type=act,
                        weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        root.setLevel(level)
    quantized = onnx.load(str(dst), load_external_data=False)
    counted = tuple(ops or QUANTIZED_OPS)
    total = sum(1 for n in model.graph.node if n.op_type in counted)
    dq_inputs = {o for n in quantized.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    done = sum(1 for n in quantized.graph.node if n.op_type in counted and n.input and n.input[0] in dq_inputs)
    return {"method": "onnxruntime quantize_static, QDQ, MinMax calibration",
            "weights": "int8, symmetric, per output channel", "activations": f"{activation}, per tensor, asymmetric",
            "quantized_ops": "all onnxruntime quantizes" if ops is None else list(ops),
            "quantized_nodes": done, "candidate_nodes": total,
            "kept_float": {g: len(v) for g, v in groups.items()}, "kept_float_nodes": excluded,
            "calibration_maps": len(items), "quantize_s": round(time.perf_counter() - start, 1)}
