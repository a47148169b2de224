"""Approximate preview of the main path: a convolution keeps its output where its input barely moved.

The exact session (``incremental.py``) recomputes the generator's main path (the residual
blocks' convolutions, ``conv_img``) in full on every update: one changed coarse pixel
reaches every pixel through the coarse 3x3 convolutions. Most of that reach is small,
though: far from the stroke a convolution's new input differs from its old one by much less
than the input's range. With a tolerance ``tol > 0`` each main-path convolution
(:func:`main_path_convs`) keeps, for the session, its output and, per ``b`` x ``b`` tile,
the input window (tile plus the kernel's halo) that output was computed from. On an
update it compares each tile's new window with that one and recomputes only the tiles
where some value moved by more than ``tol`` times the input's largest magnitude (taken at
the last full pass); elsewhere it keeps its output. Elementwise work (eval BatchNorm,
modulation, activations, adds, upsampling) runs on the full tensors as before.

What that trades. A kept tile's output is off by at most what its window moved (<= the
threshold per value) through the kernel; comparing with the window the tile was *computed
from* (not with the last update's) keeps that bound across any number of updates: errors
do not pile up stroke after stroke, and a slow drift is caught once it passes the
threshold. The image is not the full pass's: ``benchmarks/edit_preview.py`` measures how far
it is (PSNR, levels) and what it saves, per ``tol``.

Convolutions that are not zero-padded 'same' ones (stride, dilation, even kernels) are
always recomputed whole; as for the label branches, a layer whose dirty tiles exceed
``full_above`` of its map runs whole (and refreshes every tile's window).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.deploy.incremental import Tiles, _valid_conv, block_for
from sdk.train.deploy.locality import MODULATIONS


def main_path_convs(module: nn.Module) -> list[nn.Conv2d]:
    """The convolutions of ``module`` outside the modulation layers' label branches."""
    in_branches = {id(c) for m in module.modules() if isinstance(m, MODULATIONS) for c in m.modules()}
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and id(m) not in in_branches]


def _same_padded(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size
    return (conv.stride == (1, 1) and conv.dilation == (1, 1) and k[0] == k[1] and k[0] % 2 == 1
            and conv.padding == (k[0] // 2, k[1] // 2) and conv.padding_mode == "zeros")


class CachedConv:
    """One main-path convolution's session cache: its last output, and per tile the input
    window that output was computed from (``ref``, (N, th, tw, C, side, side))."""

    def __init__(self, conv: nn.Conv2d, tol: float, block: int, full_above: float) -> None:
        self.conv = conv
        self.tol, self.block, self.full_above = tol, block, full_above
        self.halo = conv.kernel_size[0] // 2 if _same_padded(conv) else None  # None: always whole
        self.out: torch.Tensor | None = None
        self.ref: torch.Tensor | None = None
        self.threshold = 0.0
        self.b = 1

    def reset(self) -> None:
        self.out = self.ref = None

    def macs_per_pixel(self) -> float:
        """Multiply-adds per output pixel."""
        c = self.conv
        return float(c.in_channels // c.groups * c.out_channels * c.kernel_size[0] * c.kernel_size[1])

    def __call__(self, x: torch.Tensor, incremental: bool) -> tuple[torch.Tensor, float]:
        """The convolution of ``x`` and the fraction of its output pixels computed now."""
        if not incremental or self.halo is None or self.out is None or self.ref is None \
                or self.ref.shape[0] != x.shape[0] or self.ref.shape[3] != x.shape[1] \
                or self.out.shape[-2:] != x.shape[-2:]:
            return self.whole(x), 1.0
        view = self._windows(x)
        moved = (view - self.ref).abs_().amax(dim=(3, 4, 5))  # (N, th, tw)
        idx = (moved > self.threshold).nonzero()
        if idx.shape[0] == 0:
            return self.out, 0.0
        frac = idx.shape[0] / moved.numel()
        if frac > self.full_above:
            return self.whole(x), 1.0
        n, ty, tx = idx.unbind(1)
        windows = view[n, ty, tx]  # (T, C, side, side), a copy
        self.ref[n, ty, tx] = windows
        Tiles(self.b, self.halo, idx).scatter(self.out, _valid_conv(self.conv, windows))
        return self.out, frac

    def whole(self, x: torch.Tensor) -> torch.Tensor:
        """The whole convolution (the module class's own forward); refills the cache."""
        out = nn.Conv2d.forward(self.conv, x)
        if self.halo is None:
            return out
        self.b = block_for(tuple(x.shape[-2:]), self.block)
        self.out = out
        self.ref = self._windows(x).contiguous()
        self.threshold = self.tol * float(x.abs().amax())
        return out

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """Each tile's input window, a view (N, th, tw, C, side, side), zero outside the map."""
        h, b = self.halo, self.b
        xp = F.pad(x, (h,) * 4) if h else x
        side = b + 2 * h
        return xp.unfold(2, side, b).unfold(3, side, b).permute(0, 2, 3, 1, 4, 5)


__all__ = ["CachedConv", "main_path_convs"]
