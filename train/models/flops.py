"""FLOP counting with ``torch.utils.flop_counter.FlopCounterMode``.

Counts what FlopCounterMode counts: convolutions (transposed too), matmuls / linear
layers and attention, one multiply-accumulate = 2 FLOPs; normalisation, activations
and resizes are not counted (as in the papers' figures). The model is built on the
``meta`` device, so counting a 2048x1024 generator costs no memory and no time.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def graph_flops(name: str, graph: str = "model", batch: int = 1, **overrides) -> int:
    """FLOPs of one forward pass of ``graph`` of preset ``name`` at the preset's resolution."""
    from sdk.train.models import get_preset

    preset = get_preset(name)
    with torch.device("meta"):
        model = preset.build(**overrides).eval()
        spec = model.graphs()[graph]
        inputs = [torch.empty([batch if s is None else s for s in t.shape], dtype=getattr(torch, t.dtype))
                  for t in spec.inputs]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        spec.module(*inputs)
    return int(counter.get_total_flops())
