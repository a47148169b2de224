"""Approximate preview of the main path: a convolution keeps its output where its input barely moved.

The exact session (``incremental.py``) recomputes the generator's main path (the residual
blocks' convolutions, ``conv_img``) in full on every update: one changed coarse pixel
reaches every pixel through the coarse 3x3 convolutions. Most of that reach is small,
though: far from the stroke a convolution's new input differs from its old one by much less
than the input's range. With a tolerance ``tol > 0`` each main-path convolution
(:func:`main_path_convs`) keeps, for the session, its output and, per ``b`` x ``b`` tile,
per input pixel, the value its outputs were computed from. On an update it recomputes the
tiles the changed label pixels reach (as SIGE recomputes the edit mask grown by a halo:
the stroke itself is always redrawn) and, beyond them, the tiles whose input window (the
tile plus the kernel's halo) moved by more than ``tol`` times the input's largest
magnitude (taken at the last full pass); elsewhere it keeps its output. A large ``tol`` is
SIGE's scheme (the edit's own tiles only), ``tol`` -> 0 the exact pass. Elementwise work (eval BatchNorm,
modulation, activations, adds, upsampling) runs on the full tensors as before.

What that trades. A kept tile's output is off by what its window moved, through the kernel:
at most the threshold per value (twice that on the rim it shares with a recomputed tile).
Comparing with the values the output was *computed from* (not with the last update's)
keeps that bound across any number of updates: errors do not pile up stroke after stroke,
and a slow drift is caught once it passes the threshold. The image is not the full pass's: ``benchmarks/edit_preview.py`` measures how far
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
from sdk.train.models.layers.label_map import nearest


def main_path_convs(module: nn.Module) -> list[nn.Conv2d]:
    """The convolutions of ``module`` outside the modulation layers' label branches."""
    in_branches = {id(c) for m in module.modules() if isinstance(m, MODULATIONS) for c in m.modules()}
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and id(m) not in in_branches]


def _same_padded(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size
    return (conv.stride == (1, 1) and conv.dilation == (1, 1) and k[0] == k[1] and k[0] % 2 == 1
            and conv.padding == (k[0] // 2, k[1] // 2) and conv.padding_mode == "zeros")


class CachedConv:
    """One main-path convolution's session cache: its last output, and ``ref``, per input
    pixel the value that every output reading it was computed from (see :meth:`_refresh`)."""

    def __init__(self, conv: nn.Conv2d, tol: float, block: int, full_above: float, label_halo: int) -> None:
        self.conv = conv
        self.tol, self.block, self.full_above = tol, block, full_above
        self.label_halo = label_halo  # how far a changed label pixel moves a modulation's output
        self.halo = conv.kernel_size[0] // 2 if _same_padded(conv) else None  # None: always whole
        self.out: torch.Tensor | None = None
        self.ref: torch.Tensor | None = None
        self.owned = False  # ref is our own copy (else the input tensor of the last whole run)
        self.threshold = 0.0
        self.b = 1

    def reset(self) -> None:
        self.out = self.ref = None

    def macs_per_pixel(self) -> float:
        """Multiply-adds per output pixel."""
        c = self.conv
        return float(c.in_channels // c.groups * c.out_channels * c.kernel_size[0] * c.kernel_size[1])

    def __call__(self, x: torch.Tensor, changed: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """The convolution of ``x`` and the fraction of its output pixels computed now;
        ``changed``: the (N, H, W) mask of label pixels the update changed (None: a full pass)."""
        if changed is None or self.halo is None or self.out is None or self.ref is None or self.ref.shape != x.shape:
            return self.whole(x, rescale=True), 1.0
        h, b = self.halo, self.b
        moved = (x - self.ref).abs_().amax(1, keepdim=True)  # (N, 1, H, W)
        hit = F.max_pool2d(moved, b + 2 * h, stride=b, padding=h)[:, 0] > self.threshold  # over each window
        hit |= self._reached(changed, tuple(x.shape[-2:]))
        idx = hit.nonzero()
        if idx.shape[0] == 0:
            return self.out, 0.0
        frac = idx.shape[0] / hit.numel()
        if frac > self.full_above:
            return self.whole(x, rescale=False), 1.0
        tiles = Tiles(b, h, idx)
        tiles.scatter(self.out, _valid_conv(self.conv, tiles.gather(x)))
        self._refresh(x, hit, idx)
        return self.out, frac

    def _reached(self, changed: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, th, tw): the tiles whose window a changed label pixel reaches at this layer
        (sampled as the layer's label is, grown by the label branch's halo): these are
        recomputed whatever ``tol``, so the stroke itself is always drawn."""
        grow = self.halo + self.label_halo
        mask = nearest(changed, size).unsqueeze(1).to(torch.float32)
        return F.max_pool2d(mask, self.b + 2 * grow, stride=self.b, padding=grow)[:, 0] > 0

    def whole(self, x: torch.Tensor, rescale: bool) -> torch.Tensor:
        """The whole convolution (the module class's own forward); refills the cache. The
        threshold is taken from the input's range at full passes only."""
        out = nn.Conv2d.forward(self.conv, x)
        if self.halo is None:
            return out
        self.b = block_for(tuple(x.shape[-2:]), self.block)
        # no copy: _refresh clones ref before its first write, and these generators never
        # write into a convolution's input after the convolution
        self.out, self.ref, self.owned = out, x, False
        if rescale:
            self.threshold = self.tol * float(x.abs().amax())
        return out

    def _refresh(self, x: torch.Tensor, hit: torch.Tensor, idx: torch.Tensor) -> None:
        """``ref`` takes ``x``'s values where every output reading them was just recomputed:
        the recomputed tiles' blocks, less the pixels within the halo of a kept output. A kept
        output is then compared with the values it was computed from (or ones within the
        threshold of them, at a kept block's rim), so its error does not grow update by update."""
        if not self.owned:
            self.ref, self.owned = self.ref.clone(), True
        h, b = self.halo, self.b
        done = hit[:, None].to(x.dtype).repeat_interleave(b, 2).repeat_interleave(b, 3)  # (N, 1, H, W)
        if h:  # erode: a pixel is done when no kept output within the halo reads it
            done = 1 - F.max_pool2d(1 - done, 2 * h + 1, stride=1, padding=h)
        ref = self.ref
        for n, y, c in idx.tolist():
            ys, xs = slice(y * b, (y + 1) * b), slice(c * b, (c + 1) * b)
            ref[n, :, ys, xs] = torch.where(done[n, :, ys, xs] > 0, x[n, :, ys, xs], ref[n, :, ys, xs])


__all__ = ["CachedConv", "main_path_convs"]
