"""TensorRT: a bundle's ONNX graph -> a serialised plan (TensorRT 10 Python API).

``trt.Builder`` -> ``create_network(0)`` (explicit batch is the only mode in TensorRT 10)
-> ``trt.OnnxParser`` -> builder config with one optimisation profile over the batch
axis (MIN:OPT:MAX), the precision flag (FP16 / BF16 / TF32; FP32 clears TF32, which
TensorRT enables by default), ``OBEY_PRECISION_CONSTRAINTS`` with normalisation layers
pinned to FP32, a timing cache reused across builds, and ``build_serialized_network``.

Which layers are pinned is decided from the ONNX graph (:func:`fp32_pinned_nodes`, no
TensorRT needed) and matched to TensorRT layers by name (the ONNX parser names a layer
after its node), plus every TensorRT NORMALIZATION / REDUCE layer by type.

Written against the documented TensorRT 10 API; not run on this repository's CI machine
(no GPU, no TensorRT there): see engines/README.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import onnx

from sdk.engines import import_tensorrt
from sdk.export.engine_records import BatchProfile

NORM_OPS = frozenset({"BatchNormalization", "InstanceNormalization", "GroupNormalization", "LayerNormalization",
                      "ReduceMean", "ReduceSumSquare", "ReduceL2", "ReduceSum", "Sqrt", "Reciprocal", "Pow",
                      "Softmax", "LpNormalization"})
"""ONNX op types kept FP32: normalisations and the statistics of decomposed ones (mean,
variance, rsqrt), and softmax."""
NORM_NAME_HINTS = ("norm",)
"""Node-name fragments (lower case) that mark a node of a normalisation layer."""


def fp32_pinned_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the ONNX nodes to pin to FP32: by op type (:data:`NORM_OPS`) or by name.

    Unnamed nodes get the parser's default ``<op_type>_<index>`` name so they can still be
    matched.
    """
    names = []
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if node.op_type in NORM_OPS or any(h in name.lower() for h in NORM_NAME_HINTS):
            names.append(name)
    return names


def layer_matches(layer_name: str, pinned: Iterable[str]) -> bool:
    """A TensorRT layer belongs to a pinned node when its name is the node's name, possibly
    with a suffix the parser adds when one node becomes several layers."""
    return any(layer_name == n or layer_name.startswith(n + "_") or layer_name.startswith(n + " ")
               or layer_name.startswith(n + ".") for n in pinned)


def pin_layers_fp32(network: Any, pinned: list[str]) -> list[str]:
    """Set ``precision`` and output types of matching layers to FP32; returns their names."""
    trt = import_tensorrt()
    by_type = {trt.LayerType.NORMALIZATION, trt.LayerType.REDUCE, trt.LayerType.SOFTMAX}
    skip = {trt.LayerType.CONSTANT, trt.LayerType.SHAPE}
    done = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in skip or not (layer.type in by_type or layer_matches(layer.name, pinned)):
            continue
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not all(o.is_execution_tensor and o.dtype in (trt.float32, trt.float16, trt.bfloat16) for o in outs):
            continue  # shape tensors and integer outputs keep their types
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        done.append(layer.name)
    return done


def build_plan(onnx_path: str | Path, out: str | Path, *, precision: str, batch: BatchProfile,
               input_shapes: dict[str, list[int]], timing_cache: str | Path | None = None,
               workspace_gib: float = 8.0) -> dict[str, Any]:
    """Build and write the plan; ``input_shapes``: input -> shape without the batch axis.

    Returns build notes (pinned layer count, flags).
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    elif precision == "tf32":
        config.set_flag(trt.BuilderFlag.TF32)
    elif precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    pinned: list[str] = []
    if precision in ("fp16", "bf16"):
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = pin_layers_fp32(network, fp32_pinned_nodes(onnx.load(str(onnx_path), load_external_data=False)))
    profile = builder.create_optimization_profile()
    for name, rest in input_shapes.items():
        profile.set_shape(name, (batch.min, *rest), (batch.opt, *rest), (batch.max, *rest))
    config.add_optimization_profile(profile)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=True)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build {onnx_path} at {precision} (see the log above)")
    Path(out).write_bytes(bytes(plan))
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"fp32_pinned_layers": len(pinned), "workspace_gib": workspace_gib}
