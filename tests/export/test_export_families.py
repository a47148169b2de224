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
    """One cross- and one self-attention per attention block of the pyramid, each a softmax
    over the scores of a query-key product."""
    from sdk.train.models import get_preset

    path = small_bundle("dpsims-ade20k")
    blocks = get_preset("dpsims-ade20k").config.block_types.count("attn")
    model = onnx.load(str(path / "model.onnx"))
    softmax = _nodes(path / "model.onnx", "Softmax")
    assert len(softmax) == 2 * blocks == 4
    producers = {out: n for n in model.graph.node for out in n.output}

    def upstream(name, depth=4):
        node = producers.get(name)
        if node is None or depth == 0:
            return set()
        return {node.op_type} | set().union(*(upstream(i, depth - 1) for i in node.input))

    for node in softmax:
        assert "MatMul" in upstream(node.input[0]), node.name  # scores = q @ k^T (scaled)
