"""Residual blocks conditioned on the label map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.norm import SPADE, maybe_spectral


class SPADEResnetBlock(nn.Module):
    """SPADE ResBlk (Park et al. 2019, Fig. 4): two SPADE-ReLU-conv stages plus a
    learned 1x1 shortcut (with its own SPADE) when the width changes.

    Attribute names (``conv_0``, ``norm_s``...) follow NVlabs/SPADE; OASIS' block has
    the same layout with its SPADE norms named ``first_norm`` (``norm_attr``).
    """

    def __init__(self, fin: int, fout: int, label_nc: int, *, norm: str = "syncbatch",
                 kernel_size: int = 3, spectral: bool = True, hidden: int = 128,
                 norm_attr: str = "param_free_norm") -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
        self.norm_0 = SPADE(fin, label_nc, norm, kernel_size, hidden, norm_attr)
        self.norm_1 = SPADE(fmiddle, label_nc, norm, kernel_size, hidden, norm_attr)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, norm, kernel_size, hidden, norm_attr)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx
