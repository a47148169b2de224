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

Node groups (:func:`node_groups`): every quantizable node belongs to exactly one, so a
builder can keep whole groups float and say what that cost:

* ``last_conv``, ``attention``: above;
* ``modulation``: the convolutions that make a conditional normalisation's scale and
  shift (SPADE's, CG-Norm's ``mlp_gamma`` / ``mlp_beta``, found by the torch module
  names the exporter writes into each node's metadata);
* ``label_convs``: convolutions over the label map: a conditional norm's shared
  convolution (``mlp_shared``; where the label is read by table lookups only the part
  over non-label channels is left) and any other convolution reading the label input
  with no quantized operator between (SPADE's ``fc`` over the downsampled label). Label
  lookups themselves (``Gather``) are never quantized;
* ``input_convs``: convolutions and matrix products reading another graph input (latent,
  per-class codes, noise) with no quantized operator between (GroupDNet's grouped ``fc``
  over the codes, DP-SIMS' mapping network's first layer);
* ``main_path``: the rest (the residual blocks' convolutions and shortcuts).

Where an INT8 engine misses its bar, the builder keeps groups float one at a time in the
order of :data:`ESCALATION` (``export.engine_cpu``); ``benchmarks/int8_layers.py`` measures
what each group costs in dB and in speed when quantized.
"""
from __future__ import annotations

import ast
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import onnx

QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
NODE_GROUPS = ("last_conv", "attention", "modulation", "label_convs", "input_convs", "main_path")
"""Every quantizable node is in one of these (module docstring), taken in this order."""
KEEP_FLOAT = ("last_conv", "attention")
"""Node groups :func:`float_nodes` keeps in FP32 by default (see the module docstring)."""
ESCALATION = ("input_convs", "label_convs", "modulation")
"""Groups an INT8 build keeps float, one more per step, while its worst held-out image is
below the bar (``export.engine_cpu``): the order of the measured sensitivity
(``benchmarks/int8_layers.py``). ``main_path`` is not a step: keeping it float leaves
an FP32 graph with quantization overhead."""
MODULATION_MODULES = ("mlp_gamma", "mlp_beta")
SHARED_LABEL_MODULES = ("mlp_shared",)
LABEL_KINDS = ("label", "instance_edge")


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


def _module_path(node: onnx.NodeProto) -> list[str]:
    """The torch module path the exporter recorded for ``node`` (``pkg.torch.onnx.name_scopes``
    metadata), as dotted components; empty when the graph carries none."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            return str(scopes[-2]).split(".") if len(scopes) > 1 else []
    return []


def _data_inputs(node: onnx.NodeProto, constants: set[str]) -> list[str]:
    """The inputs of a quantizable node that carry activations (not weights / biases)."""
    if node.op_type == "MatMul":
        return [t for t in node.input[:2] if t and t not in constants]
    return [node.input[0]] if node.input and node.input[0] not in constants else []


def node_groups(model: onnx.ModelProto, label_inputs: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Group -> names of the quantizable nodes (:data:`QUANTIZED_OPS`) in it, every node in
    exactly one group of :data:`NODE_GROUPS` (module docstring). ``label_inputs``: the graph
    inputs that carry the label map (default: those named ``label`` / ``instance_edge``)."""
    groups: dict[str, list[str]] = {g: [] for g in NODE_GROUPS}
    last, attention = set(last_convs(model)), set(attention_matmuls(model))
    constants = {t.name for t in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    graph_inputs = {i.name for i in model.graph.input} - constants
    labels = set(LABEL_KINDS if label_inputs is None else label_inputs)
    # per tensor: graph inputs reachable backwards without crossing a quantizable node, and
    # whether some path back crosses one (the node reads features, not inputs)
    free: dict[str, frozenset[str]] = {name: frozenset([name]) for name in graph_inputs}
    behind: dict[str, bool] = {name: False for name in graph_inputs}
    for node in model.graph.node:  # ONNX graphs are stored in topological order
        quantizable = node.op_type in QUANTIZED_OPS
        ins = [t for t in node.input if t and t not in constants]
        reach = frozenset().union(*(free.get(t, frozenset()) for t in ins)) if ins else frozenset()
        crossed = any(behind.get(t, False) for t in ins)
        for out in node.output:
            free[out], behind[out] = (frozenset(), True) if quantizable else (reach, crossed)
        if not quantizable:
            continue
        data = _data_inputs(node, constants)
        reads = frozenset().union(*(free.get(t, frozenset()) for t in data)) if data else frozenset()
        direct = bool(reads) and not any(behind.get(t, False) for t in data)
        module = _module_path(node)[-3:]  # e.g. norm_0.mlp_gamma, mlp_shared.0.dense
        if node.name in last:
            group = "last_conv"
        elif node.name in attention:
            group = "attention"
        elif any(m in MODULATION_MODULES for m in module):
            group = "modulation"
        elif any(m in SHARED_LABEL_MODULES for m in module) or (direct and reads <= labels):
            group = "label_convs"
        elif direct:
            group = "input_convs"
        else:
            group = "main_path"
        groups[group].append(node.name)
    return groups


def float_nodes(model: onnx.ModelProto, keep: Iterable[str] = KEEP_FLOAT,
                label_inputs: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Group -> node names to leave in float, for the groups ``keep`` (of :data:`NODE_GROUPS`)."""
    keep = tuple(keep)
    unknown = sorted(set(keep) - set(NODE_GROUPS))
    if unknown:
        raise ValueError(f"unknown keep-float groups {unknown}; choose from {', '.join(NODE_GROUPS)}")
    groups = node_groups(model, label_inputs)
    return {g: groups[g] for g in NODE_GROUPS if g in keep}


def check_float_outputs(model: onnx.ModelProto) -> None:
    """Raise if a graph output comes out of a quantize / dequantize pair: the image must
    leave an INT8 graph as the FP32 graph's does (float, and the in-graph 8-bit image)."""
    producers = _producers(model)
    for out in model.graph.output:
        node = producers.get(out.name)
        if node is not None and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            raise ValueError(f"output {out.name} of the INT8 graph is made by {node.op_type}; its producer must "
                             f"stay float")


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
                   ops: Sequence[str] | None = QUANTIZED_OPS,
                   label_inputs: Iterable[str] | None = None) -> dict[str, Any]:
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
    groups = float_nodes(model, keep_float, label_inputs)
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
    check_float_outputs(quantized)
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
