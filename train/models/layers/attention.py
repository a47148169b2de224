"""Attention over feature maps (DP-SIMS' label-map encoder).

Both layers flatten an (N, C, H, W) map to H*W tokens and call
``F.scaled_dot_product_attention`` (fused flash / memory-efficient kernels on GPU;
``torch.onnx.export`` writes it as MatMul + Softmax, or a single Attention node where
the opset has one). Inner width is ``C // divider``, split over ``heads``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, d = x.shape
    return x.reshape(n, t, heads, d // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, h, t, d = x.shape
    return x.transpose(1, 2).reshape(n, t, h * d)


class _Attention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with Q from the map and K, V from ``context``."""

    def __init__(self, channels: int, context_dim: int, divider: int = 2, heads: int = 1) -> None:
        super().__init__()
        inner = channels // divider
        if inner % heads:
            raise ValueError(f"inner width {inner} (= {channels} // {divider}) is not divisible "
                             f"by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(channels, inner)
        self.to_k = nn.Linear(context_dim, inner)
        self.to_v = nn.Linear(context_dim, inner)
        self.to_out = nn.Linear(inner, channels)

    def attend(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        ctx = tokens if context is None else context
        q = _split_heads(self.to_q(tokens), self.heads)
        k = _split_heads(self.to_k(ctx), self.heads)
        v = _split_heads(self.to_v(ctx), self.heads)
        out = self.to_out(_merge_heads(F.scaled_dot_product_attention(q, k, v)))
        return out.transpose(1, 2).reshape(n, c, h, w)


class CrossAttention2d(_Attention):
    """Residual cross-attention from a feature map to a token set, gated:
    ``x + gate * attn(x, context)`` with the scalar ``gate`` starting at 0, so the
    block is the identity at initialisation and learns how much noise to inject
    (``gate_init`` other than 0 only for tests that need the branch to matter)."""

    def __init__(self, channels: int, context_dim: int, divider: int = 2, heads: int = 1,
                 gate_init: float = 0.0) -> None:
        super().__init__(channels, context_dim, divider, heads)
        self.gate = nn.Parameter(torch.full((), float(gate_init)))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W), ``context`` (N, T, context_dim) -> (N, C, H, W)."""
        return x + self.gate * self.attend(x, context)


class SelfAttention2d(_Attention):
    """Residual self-attention over the pixels of a feature map: ``x + attn(x, x)``."""

    def __init__(self, channels: int, divider: int = 2, heads: int = 1) -> None:
        super().__init__(channels, channels, divider, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x, None)
