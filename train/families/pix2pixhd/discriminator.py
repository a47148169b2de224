"""pix2pixHD (Wang et al. 2018) multi-scale PatchGAN discriminator, the official layout
(``scale{i}_layer{j}`` with intermediate features for feature matching)."""
from __future__ import annotations

import torch
from torch import nn

from sdk.train.families.pix2pixhd.network import norm_factory, pyramid_down


class NLayerDiscriminator(nn.Module):
    """PatchGAN with 4x4 kernels: ``n_layers`` stride-2 convs (widths doubling from ``ndf``
    up to 512), one stride-1 conv and a 1-channel stride-1 output conv. With
    ``intermediate=True`` each stage is its own Sequential ``model{j}`` and ``forward``
    returns every stage's output (for feature matching); the score is the last."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 intermediate: bool = True) -> None:
        super().__init__()
        nl = norm_factory(norm)
        stages: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2),
                                          nn.LeakyReLU(0.2, True)]]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            stages.append([nn.Conv2d(prev, nf, 4, stride=stride, padding=2), nl(nf), nn.LeakyReLU(0.2, True)])
        stages.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
        self.intermediate = intermediate
        self.n_stages = len(stages)
        if intermediate:
            for j, stage in enumerate(stages):
                setattr(self, f"model{j}", nn.Sequential(*stage))
        else:
            self.model = nn.Sequential(*[m for stage in stages for m in stage])

    def stages(self) -> list[nn.Module]:
        if not self.intermediate:
            return [self.model]
        return [getattr(self, f"model{j}") for j in range(self.n_stages)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages():
            x = stage(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on the input and its 2x, 4x... downsampled copies.

    ``forward`` returns one list of stage outputs per scale, full resolution first.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_D: int = 3, intermediate: bool = True) -> None:
        super().__init__()
        self.num_D = num_D
        self.intermediate = intermediate
        for i in range(num_D):
            d = NLayerDiscriminator(input_nc, ndf, n_layers, norm, intermediate)
            if intermediate:
                for j, stage in enumerate(d.stages()):
                    setattr(self, f"scale{i}_layer{j}", stage)
                self.n_stages = d.n_stages
            else:
                setattr(self, f"layer{i}", d.model)

    def _stages(self, i: int) -> list[nn.Module]:
        if self.intermediate:
            return [getattr(self, f"scale{i}_layer{j}") for j in range(self.n_stages)]
        return [getattr(self, f"layer{i}")]

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for k in range(self.num_D):
            feats, h = [], x
            for stage in self._stages(self.num_D - 1 - k):  # full resolution -> highest index
                h = stage(h)
                feats.append(h)
            results.append(feats)
            if k != self.num_D - 1:
                x = pyramid_down(x)
        return results
