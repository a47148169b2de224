"""Progressive GAN layers (Karras et al., ICLR 2018, Sec. 4): equalized learning rate,
pixelwise feature normalisation and the minibatch standard deviation.

Equalized learning rate: weights are stored as ``N(0, 1)`` samples and multiplied at
run time by He's constant ``gain / sqrt(fan_in)``, so Adam's per-parameter step size
acts on every layer at the same effective rate.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualizedConv2d(nn.Module):
    """A 2-D convolution with run-time He scaling of its ``N(0, 1)`` weights.

    ``scale = gain / sqrt(in_channels * k * k)``; the bias starts at zero and is not scaled.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int | None = None, gain: float = math.sqrt(2), bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, padding={self.padding}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Module):
    """A fully-connected layer with run-time He scaling (``gain / sqrt(in_features)``)."""

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2),
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """``x / sqrt(mean_c(x^2) + eps)`` over the channel axis (paper Eq. in Sec. 4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the standard deviation of each feature and pixel over a
    group of samples, averaged to a single value and replicated (paper Sec. 3).

    Samples are split into groups of ``group_size`` (the official code uses 4; the paper's
    description is the whole minibatch, ``group_size=0``). A batch smaller than a group,
    or one that does not divide into groups, forms a single group. The standard deviation
    is the biased one, ``sqrt(mean((x - mean)^2) + eps)``, as the official code computes it.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size <= 0 or n % self.group_size else self.group_size
        y = x.reshape(g, -1, c, h, w)  # sample i joins group i % (n // g), as the official code
        y = y - y.mean(dim=0, keepdim=True)
        y = torch.sqrt(y.pow(2).mean(dim=0) + self.eps)  # (n/g, c, h, w)
        y = y.mean(dim=(1, 2, 3))  # (n/g,)
        y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], dim=1)
