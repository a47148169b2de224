"""Exponential moving average of a network's weights (DP-SIMS, OASIS, Progressive GAN)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after each step; buffers are copied."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        src = module.state_dict()
        params = {name for name, _ in module.named_parameters()}
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point and name in params:
                value.lerp_(src[name].to(value.dtype), 1 - d)
            else:
                value.copy_(src[name])
