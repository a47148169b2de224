"""MSG U-Net (multi-scale gradient U-Net for high-resolution image-to-image translation, 2020).

A pix2pix-style U-Net whose encoder sees the source image at every scale and whose
decoder emits an image at every scale, so the per-scale discriminators pass gradients
straight into the intermediate decoder layers (the MSG-GAN idea).

Encoder: ``n_down`` blocks Conv4x4(stride 2)-BN-LeakyReLU(0.2). After each of the first
``n_inject`` blocks (scales 1/2 .. 1/16) the source, area-downsampled to that scale, is
concatenated and mixed back to the block's width by a Conv1x1-BN-LeakyReLU block. The
remaining blocks are a plain U-Net down to 1/256 (8x4 at 2048x1024).

Decoder: ConvTranspose4x4(stride 2)-BN-LeakyReLU blocks; from the second one on, the
input is the previous output concatenated with the encoder feature of the same scale
(U-Net skip). The last block reaches full resolution. ``to_rgb`` (Conv1x1 + tanh)
branches an image off the decoder at scales 1/16, 1/8, 1/4, 1/2 and 1.

Choices where the paper leaves details open (documented here, reported with the FLOPs):

* widths: encoder block ``i`` (1-based) has ``min(ngf * 2**(i-1), max_width)`` channels,
  pix2pix's 64-128-256-512-512...; the decoder mirrors them and its full-resolution
  block has ``ngf`` channels;
* depth: 8 stride-2 blocks for both presets (8x4 bottleneck at 2048x1024, 2x2 at 512x512);
* the source is area-downsampled (2x2 average pooling per octave);
* BatchNorm in every block (the first encoder block included), no dropout;
* ``to_rgb`` is a 1x1 convolution, as MSG-GAN's;
* discriminators: one conditional PatchGAN per output scale (three stride-2 4x4 layers,
  BatchNorm, the shared pix2pixHD/SPADE layout) on the source and the image at that scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.spade.discriminator import NLayerDiscriminator
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import GraphSpec, Kind, SynthesisModel, TensorSpec


@dataclass(frozen=True)
class MSGUNetConfig:
    height: int = 1024
    width: int = 2048
    ngf: int = 64
    max_width: int = 512
    n_down: int = 8  # stride-2 encoder blocks
    n_inject: int = 4  # the source enters after blocks 1..n_inject (scales 1/2 .. 1/16)
    n_outputs: int = 5  # images at scales 1, 1/2, ..., 1/2**(n_outputs-1)
    ndf: int = 64
    n_layers_D: int = 3
    num_classes: None = None  # image-to-image: no label classes


def conv_block(cin: int, cout: int, kernel: int = 4, stride: int = 2) -> nn.Sequential:
    """Conv-BN-LeakyReLU(0.2); 4x4 stride 2 halves the size, 1x1 stride 1 keeps it."""
    pad = 1 if kernel == 4 else kernel // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


def up_block(cin: int, cout: int) -> nn.Sequential:
    """ConvTranspose4x4(stride 2)-BN-LeakyReLU(0.2): doubles the size."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


class MSGUNetGenerator(nn.Module):
    """``forward(src) -> [image at 1, 1/2, ..., 1/2**(n_outputs-1)]`` (full scale first)."""

    def __init__(self, cfg: MSGUNetConfig) -> None:
        super().__init__()
        if not 1 <= cfg.n_inject <= cfg.n_down or not 1 <= cfg.n_outputs <= cfg.n_down:
            raise ValueError("n_inject and n_outputs must lie in [1, n_down]")
        f = 2**cfg.n_down
        if cfg.height % f or cfg.width % f:
            raise ValueError(f"MSG U-Net with {cfg.n_down} stride-2 blocks needs height and width "
                             f"divisible by {f}; got {cfg.height}x{cfg.width}")
        self.cfg = cfg
        # widths[i]: channels at scale 1/2**i (widths[0]: the full-scale decoder block)
        widths = [cfg.ngf] + [min(cfg.ngf * 2 ** (i - 1), cfg.max_width)
                                           for i in range(1, cfg.n_down + 1)]
        self.widths = widths
        self.down = nn.ModuleList(conv_block(widths[i - 1] if i > 1 else 3, widths[i])
                                  for i in range(1, cfg.n_down + 1))
        self.inject = nn.ModuleList(conv_block(widths[i] + 3, widths[i], kernel=1, stride=1)
                                    for i in range(1, cfg.n_inject + 1))
        # up[k] produces scale 1/2**(n_down-1-k) from scale 1/2**(n_down-k)
        self.up = nn.ModuleList(
            up_block(widths[i] * (1 if i == cfg.n_down else 2), widths[i - 1])
            for i in range(cfg.n_down, 0, -1))
        self.to_rgb = nn.ModuleList(nn.Conv2d(widths[s], 3, 1) for s in range(cfg.n_outputs))

    def forward(self, src: torch.Tensor) -> list[torch.Tensor]:
        cfg = self.cfg
        x, small, skips = src, src, []
        for i, block in enumerate(self.down, start=1):
            x = block(x)
            if i <= cfg.n_inject:
                small = F.avg_pool2d(small, 2)
                x = self.inject[i - 1](torch.cat([x, small], 1))
            skips.append(x)
        images: list[torch.Tensor] = []
        x = skips.pop()
        for k, block in enumerate(self.up):
            scale = cfg.n_down - 1 - k
            x = block(x if k == 0 else torch.cat([x, skips.pop()], 1))
            if scale < cfg.n_outputs:
                images.append(torch.tanh(self.to_rgb[scale](x)))
        return images[::-1]


class MSGDiscriminators(nn.Module):
    """One conditional PatchGAN per output scale (the shared
    :class:`~train.models.discriminators.NLayerDiscriminator` with BatchNorm);
    ``forward(src, images)`` returns, per scale (full scale first), the stage outputs for
    ``cat(src at that scale, image)``; the last entry of each list is the prediction."""

    def __init__(self, cfg: MSGUNetConfig) -> None:
        super().__init__()
        # n_layers counts the stride-1 stage too: n_layers_D + 1 -> n_layers_D halvings
        self.nets = nn.ModuleList(NLayerDiscriminator(6, cfg.ndf, cfg.n_layers_D + 1, norm="batch")
                                  for _ in range(cfg.n_outputs))

    def forward(self, src: torch.Tensor, images: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        scores = []
        for net, img in zip(self.nets, images, strict=True):
            if src.shape[-2:] != img.shape[-2:]:
                src = F.adaptive_avg_pool2d(src, img.shape[-2:])
            scores.append(net(torch.cat([src, img], 1)))
        return scores


class _Graph(nn.Module):
    def __init__(self, netG: MSGUNetGenerator) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.netG(image))


class MSGUNetModel(SynthesisModel):
    """Image-to-image MSG U-Net; ``forward`` returns the images of every scale."""

    family = "msgunet"
    task = "image2image"

    def __init__(self, config: MSGUNetConfig) -> None:
        super().__init__(config)
        self.netG = MSGUNetGenerator(config)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.netG(image)

    def build_discriminator(self) -> MSGDiscriminators:
        return MSGDiscriminators(self.config)

    def graphs(self) -> dict[str, GraphSpec]:
        c = self.config
        outputs = [TensorSpec("image", Kind.IMAGE, (None, 3, c.height, c.width))]
        for s in range(1, c.n_outputs):
            h, w = c.height // 2**s, c.width // 2**s
            outputs.append(TensorSpec(f"image_{w}x{h}", Kind.IMAGE, (None, 3, h, w)))
        return {"model": GraphSpec(_Graph(self.netG),
                                   (TensorSpec("source", Kind.IMAGE, (None, 3, c.height, c.width)),),
                                   tuple(outputs))}


_SMALL = {"ngf": 4, "max_width": 16, "n_down": 5, "height": 32, "width": 64}

register_model(Preset(
    "msgunet-cityscapes-2048", "msgunet", MSGUNetModel, MSGUNetConfig(height=1024, width=2048),
    test_overrides=_SMALL))
register_model(Preset(
    "msgunet-512", "msgunet", MSGUNetModel, MSGUNetConfig(height=512, width=512),
    test_overrides=_SMALL))
