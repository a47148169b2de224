"""Family-specific graph properties the issues promise, read from exported ONNX files."""
from __future__ import annotations

import onnx


def _nodes(path, op):
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == op]


def _group(node):
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def test_groupdnet_keeps_grouped_convolutions(small_bundle):
    path = small_bundle("groupdnet-deepfashion")
    for graph in ("model.onnx", "encoder.onnx"):
        grouped = [n for n in _nodes(path / graph, "Conv") if _group(n) > 1]
        assert len(grouped) >= (6 if graph == "model.onnx" else 1), graph
        assert max(_group(n) for n in grouped) == 8  # DeepFashion: 8 classes, 8 groups


def test_dpsims_graph_contains_its_attention(small_bundle):
    path = small_bundle("dpsims-ade20k")
    assert len(_nodes(path / "model.onnx", "Softmax")) + len(_nodes(path / "model.onnx", "Attention")) >= 2
