"""The SPADE / pix2pixHD multi-scale PatchGAN discriminator, shared by the GAN families.

Names follow NVlabs/SPADE (``discriminator_0``.. each with ``model0``..``model{n}``)
so the released ``latest_net_D.pth`` loads key for key.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.norm import nonspade_norm_layer


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a 4x4 stride-2 conv + LeakyReLU, ``n_layers - 1`` normalised 4x4 convs
    (width doubling up to 512, the last one stride 1), then a 4x4 conv to one logit map.
    Returns every stage's output; the last is the prediction."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4,
                 norm: str = "spectralinstance") -> None:
        super().__init__()
        nf = ndf
        stages: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, nf, 4, stride=2, padding=2), nn.LeakyReLU(0.2)]]
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=2)
            stages.append([nonspade_norm_layer(conv, norm), nn.LeakyReLU(0.2)])
        stages.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
        for i, stage in enumerate(stages):
            self.add_module(f"model{i}", nn.Sequential(*stage))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.children():
            x = stage(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on the input and its 3x3/stride-2 average-pooled copies.

    ``forward`` returns one list per scale of every stage's output (intermediate
    features for the feature-matching loss; the last entry is the prediction), or only
    the predictions with ``features=False``.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, num_D: int = 2,
                 norm: str = "spectralinstance") -> None:
        super().__init__()
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", NLayerDiscriminator(input_nc, ndf, n_layers, norm))

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor, features: bool = True) -> list[list[torch.Tensor]]:
        result = []
        for i, d in enumerate(self.children()):
            if i:
                x = self.downsample(x)
            out = d(x)
            result.append(out if features else out[-1:])
        return result
