"""Conditional Group Normalization (CG-Norm) and the CG-Block of GroupDNet (Zhu et al. 2020).

CG-Norm is SPADE with grouped convolutions: the label map (one channel per class) is
embedded by a grouped conv, so each group of modulation channels (gamma, beta) only
sees its own classes. The CG-Block is the SPADE ResBlk with CG-Norm and grouped 3x3 /
1x1 convs. Attribute names follow Seanseattle/SMIS (``param_free_norm``,
``mlp_shared``, ``mlp_gamma``, ``mlp_beta``; ``conv_0``, ``conv_1``, ``conv_s``,
``norm_0``, ``norm_1``, ``norm_s``) so the released generator loads key for key.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.label_map import resize_label
from sdk.train.models.layers.norm import maybe_spectral, param_free_norm

CG_LAYOUTS = ("deepfashion", "cityscapes", "ade20k")


@dataclass(frozen=True)
class CGNormWidths:
    """Channel and group numbers of one CG-Norm's label embedding."""

    seg_nc: int  # channels of the label map it reads
    hidden: int  # width of the shared embedding
    shared_groups: int  # groups of mlp_shared (label -> hidden)
    out_groups: int  # groups of mlp_gamma / mlp_beta (hidden -> norm_nc)

    @classmethod
    def for_layout(cls, layout: str, label_nc: int, groups: int) -> "CGNormWidths":
        """The per-dataset embedding widths of the official SMIS code.

        * ``deepfashion``: 128 hidden channels, every conv in ``groups`` groups.
        * ``cityscapes``: the label map interleaves each class mask with the instance
          edge map (2 channels per class); ``label_nc * groups`` hidden channels, every
          conv grouped by class (``label_nc`` groups), whatever the block's group number.
        * ``ade20k``: ``2 * label_nc`` hidden channels when ``groups`` divides
          ``label_nc``, else ``label_nc * groups``; mlp_shared grouped by class,
          gamma/beta by ``groups``.
        """
        if layout == "deepfashion":
            return cls(label_nc, 128, groups, groups)
        if layout == "cityscapes":
            return cls(2 * label_nc, label_nc * groups, label_nc, label_nc)
        if layout == "ade20k":
            hidden = 2 * label_nc if label_nc % groups == 0 else label_nc * groups
            return cls(label_nc, hidden, label_nc, groups)
        raise ValueError(f"unknown CG-Norm layout {layout!r}; use one of {CG_LAYOUTS}")


class CGNorm(nn.Module):
    """``out = norm(x) * (1 + gamma(seg)) + beta(seg)`` with grouped label embeddings."""

    def __init__(self, norm_nc: int, widths: CGNormWidths, *, norm: str = "syncbatch",
                 kernel_size: int = 3) -> None:
        super().__init__()
        w = widths
        for name, cin, cout, g in (("mlp_shared", w.seg_nc, w.hidden, w.shared_groups),
                                   ("mlp_gamma", w.hidden, norm_nc, w.out_groups)):
            if cin % g or cout % g:
                raise ValueError(f"CG-Norm {name}: {cin} -> {cout} channels cannot be split "
                                 f"into {g} groups")
        pw = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(w.seg_nc, w.hidden, kernel_size, padding=pw, groups=w.shared_groups), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(w.hidden, norm_nc, kernel_size, padding=pw, groups=w.out_groups)
        self.mlp_beta = nn.Conv2d(w.hidden, norm_nc, kernel_size, padding=pw, groups=w.out_groups)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(resize_label(seg, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class CGBlock(nn.Module):
    """Residual block of GroupDNet's decoder: two CG-Norm -> LeakyReLU -> grouped conv
    stages, plus a CG-Norm + grouped 1x1 shortcut when the width changes."""

    def __init__(self, fin: int, fout: int, groups: int, label_nc: int, *, layout: str,
                 norm: str = "syncbatch", kernel_size: int = 3, spectral: bool = True) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        for c in (fin, fmiddle, fout):
            if c % groups:
                raise ValueError(f"CG-Block {fin}->{fout}: {c} channels cannot be split into "
                                 f"{groups} groups")
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1, groups=groups), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1, groups=groups), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False, groups=groups), spectral)
        widths = CGNormWidths.for_layout(layout, label_nc, groups)
        self.norm_0 = CGNorm(fin, widths, norm=norm, kernel_size=kernel_size)
        self.norm_1 = CGNorm(fmiddle, widths, norm=norm, kernel_size=kernel_size)
        if self.learned_shortcut:
            self.norm_s = CGNorm(fin, widths, norm=norm, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx
