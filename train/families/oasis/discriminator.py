"""OASIS (Schönfeld et al. 2021) discriminator: a U-Net of residual blocks with C + 1 per-pixel
outputs (class c + 1 is "real, of label c"; 0 is "fake"). DP-SIMS reuses its residual block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.norm import maybe_spectral


class ResBlockD(nn.Module):
    """Discriminator residual block: (LeakyReLU, conv3x3) x 2 plus a 1x1 shortcut when
    the width changes; optional 2x average-pool downsampling at the end."""

    def __init__(self, cin: int, cout: int, spectral: bool = True, down: bool = False) -> None:
        super().__init__()
        self.down = down
        self.conv1 = maybe_spectral(nn.Conv2d(cin, cout, 3, padding=1), spectral)
        self.conv2 = maybe_spectral(nn.Conv2d(cout, cout, 3, padding=1), spectral)
        self.conv_s = maybe_spectral(nn.Conv2d(cin, cout, 1), spectral) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.conv_s is None else self.conv_s(x)
        dx = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        out = s + dx
        return F.avg_pool2d(out, 2) if self.down else out


class OASISDiscriminator(nn.Module):
    """Encoder of residual down blocks, decoder of residual blocks with U-Net skips,
    a 1x1 conv to C + 1 per-pixel logits."""

    def __init__(self, num_classes: int, width: int = 64, depth: int = 6) -> None:
        super().__init__()
        widths = [3] + [min(width * 2**i, 8 * width) for i in range(depth)]
        self.down = nn.ModuleList(ResBlockD(widths[i], widths[i + 1], down=True) for i in range(depth))
        ups = []
        for i in range(depth - 1, 0, -1):
            cin = widths[i + 1] if i == depth - 1 else widths[i + 1] * 2
            ups.append(ResBlockD(cin, widths[i]))
        self.up = nn.ModuleList(ups)
        self.out = nn.Conv2d(widths[1] * 2, num_classes + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = []
        for block in self.down:
            x = block(x)
            feats.append(x)
        x = feats[-1]
        for block, skip in zip(self.up, feats[-2::-1]):
            x = F.interpolate(block(x), size=skip.shape[-2:], mode="nearest")
            x = torch.cat([x, skip], 1)
        return F.interpolate(self.out(x), size=size, mode="nearest")
