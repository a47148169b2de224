"""Progressive GAN (Karras et al., ICLR 2018): generator and discriminator of Table 2.

Generator: the 512-d latent is pixel-normalised, a dense layer makes a 4x4 map (the
paper's "4x4 conv" on a 1x1 input), then one block per resolution: nearest 2x upsampling
and two 3x3 convs, each followed by LeakyReLU(0.2) and pixel norm. Every resolution has
its own 1x1 ``to_rgb``. Discriminator: the mirror image with 1x1 ``from_rgb`` layers,
2x2 average pooling, a minibatch-stddev feature map at 4x4, a 3x3 and a 4x4 conv and a
linear output. All layers use the equalized learning rate.

Widths follow the official code, ``min(fmap_base / 2**stage, fmap_max)`` with stage 1 at
4x4: 512 up to 32x32, then halving to 16 at 1024x1024 (Table 2).

Progressive growing: ``set_lod(lod)`` picks the level of detail as the official trainer
does, ``lod = max_level - level + (1 - alpha)``. With ``alpha < 1`` the newest block fades
in: its output is blended with the 2x upsampled image of the level below (generator) and
the discriminator blends its new block with ``from_rgb`` of the 2x downsampled image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
)
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import GraphSpec, Kind, SynthesisModel, TensorSpec


@dataclass(frozen=True)
class ProGANConfig:
    height: int = 1024  # square, a power of two >= 4
    width: int = 1024
    latent_dim: int = 512
    fmap_base: int = 8192
    fmap_max: int = 512
    mbstd_group: int = 4  # minibatch-stddev group size (0: whole minibatch)
    num_classes: None = None  # unconditional


def _levels(cfg: ProGANConfig) -> int:
    """Index of the top level: 0 is 4x4, ``max_level`` the preset resolution."""
    res = cfg.height
    if cfg.height != cfg.width or res < 4 or res & (res - 1):
        raise ValueError(f"ProGAN needs a square power-of-two resolution >= 4, got {cfg.height}x{cfg.width}")
    return int(math.log2(res)) - 2


def _nf(cfg: ProGANConfig, level: int) -> int:
    return min(cfg.fmap_base // 2 ** (level + 1), cfg.fmap_max)


class _LodMixin:
    """Current level of detail shared by generator and discriminator."""

    max_level: int
    level: int
    alpha: float

    @property
    def lod(self) -> float:
        return self.max_level - self.level + (1.0 - self.alpha)

    def set_lod(self, lod: float) -> None:
        """Grow to ``lod`` (0: fully grown; ``max_level``: 4x4 only). A fractional part
        ``f`` fades in level ``max_level - floor(lod)`` with ``alpha = 1 - f``."""
        if not 0 <= lod <= self.max_level:
            raise ValueError(f"lod must be in [0, {self.max_level}], got {lod}")
        base = math.floor(lod)
        self.level, self.alpha = self.max_level - base, 1.0 - (lod - base)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class GBlock(nn.Module):
    """Upsample x2 (nearest), then two 3x3 conv - LeakyReLU - pixel norm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cout, 3)
        self.conv1 = EqualizedConv2d(cout, cout, 3)
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(_lrelu(self.conv0(x)))
        return self.norm(_lrelu(self.conv1(x)))


class ProGANGenerator(_LodMixin, nn.Module):
    """Generator of Table 2 (left). ``forward(z)`` runs at the current level of detail."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_level = _levels(cfg)
        self.level, self.alpha = self.max_level, 1.0
        c0 = _nf(cfg, 0)
        self.norm = PixelNorm()
        # Dense latent -> 4x4 map; the official gain sqrt(2)/4 treats it as a 4x4 conv.
        self.dense = EqualizedLinear(cfg.latent_dim, c0 * 16, gain=math.sqrt(2) / 4)
        self.conv = EqualizedConv2d(c0, c0, 3)
        self.blocks = nn.ModuleList(GBlock(_nf(cfg, i - 1), _nf(cfg, i)) for i in range(1, self.max_level + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(_nf(cfg, i), 3, 1, gain=1.0)
                                    for i in range(self.max_level + 1))

    def forward(self, z: torch.Tensor, level: int | None = None, alpha: float | None = None) -> torch.Tensor:
        """Image at resolution ``4 * 2**level`` (linear output, roughly [-1, 1])."""
        level = self.level if level is None else level
        alpha = self.alpha if alpha is None else alpha
        x = self.dense(self.norm(z)).view(z.shape[0], -1, 4, 4)
        x = self.norm(_lrelu(x))
        x = self.norm(_lrelu(self.conv(x)))
        prev = x
        for block in self.blocks[:level]:
            prev, x = x, block(x)
        img = self.to_rgb[level](x)
        if alpha < 1 and level > 0:
            low = F.interpolate(self.to_rgb[level - 1](prev), scale_factor=2, mode="nearest")
            img = torch.lerp(low, img, alpha)
        return img


class DBlock(nn.Module):
    """Two 3x3 conv - LeakyReLU, then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(cin, cin, 3)
        self.conv1 = EqualizedConv2d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _lrelu(self.conv1(_lrelu(self.conv0(x))))
        return F.avg_pool2d(x, 2)


class ProGANDiscriminator(_LodMixin, nn.Module):
    """Discriminator of Table 2 (right): one score per image, no sigmoid (WGAN-GP)."""

    def __init__(self, cfg: ProGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_level = _levels(cfg)
        self.level, self.alpha = self.max_level, 1.0
        self.from_rgb = nn.ModuleList(EqualizedConv2d(3, _nf(cfg, i), 1) for i in range(self.max_level + 1))
        # blocks[i - 1] takes level i (resolution 4 * 2**i) down to level i - 1
        self.blocks = nn.ModuleList(DBlock(_nf(cfg, i), _nf(cfg, i - 1)) for i in range(1, self.max_level + 1))
        c0 = _nf(cfg, 0)
        self.mbstd = MinibatchStdDev(cfg.mbstd_group)
        self.conv = EqualizedConv2d(c0 + 1, c0, 3)
        self.dense0 = EqualizedLinear(c0 * 16, c0)  # the paper's 4x4 conv on a 4x4 map
        self.dense1 = EqualizedLinear(c0, 1, gain=1.0)

    def forward(self, img: torch.Tensor, level: int | None = None, alpha: float | None = None) -> torch.Tensor:
        level = self.level if level is None else level
        alpha = self.alpha if alpha is None else alpha
        x = _lrelu(self.from_rgb[level](img))
        if level > 0:
            x = self.blocks[level - 1](x)
            if alpha < 1:
                low = _lrelu(self.from_rgb[level - 1](F.avg_pool2d(img, 2)))
                x = torch.lerp(low, x, alpha)
        for i in range(level - 1, 0, -1):
            x = self.blocks[i - 1](x)
        x = _lrelu(self.conv(self.mbstd(x)))
        x = _lrelu(self.dense0(x.flatten(1)))
        return self.dense1(x)


class _FullyGrown(nn.Module):
    """Deploy view: the fully grown generator, output clamped to the image range."""

    def __init__(self, netG: ProGANGenerator) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.netG(z, self.netG.max_level, 1.0).clamp(-1, 1)


class ProGANModel(SynthesisModel):
    """Unconditional Progressive GAN. ``netG`` is trained together with a discriminator
    from :meth:`build_discriminator`; keep both at the same lod (:meth:`set_lod`)."""

    family = "progan"
    task = "unconditional"

    def __init__(self, config: ProGANConfig) -> None:
        super().__init__(config)
        self.netG = ProGANGenerator(config)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.netG(z)

    def build_discriminator(self) -> ProGANDiscriminator:
        netD = ProGANDiscriminator(self.config)
        netD.set_lod(self.netG.lod)
        return netD

    def set_lod(self, lod: float, *discriminators: ProGANDiscriminator) -> None:
        """Set the level of detail of the generator and the given discriminators."""
        for net in (self.netG, *discriminators):
            net.set_lod(lod)

    def graphs(self) -> dict[str, GraphSpec]:
        cfg = self.config
        return {"model": GraphSpec(
            _FullyGrown(self.netG),
            (TensorSpec("z", Kind.LATENT, (None, cfg.latent_dim), {"distribution": "normal", "normalized": True}),),
            (TensorSpec("image", Kind.IMAGE, (None, 3, cfg.height, cfg.width)),))}


_SMALL = {"height": 16, "width": 16, "fmap_base": 64, "fmap_max": 16, "latent_dim": 16}

register_model(Preset(
    "progan-celebahq-1024", "progan", ProGANModel, ProGANConfig(height=1024, width=1024),
    paper_params=23.1e6, paper_source="Progressive GAN paper, Table 2 (generator, 23.1M parameters)",
    test_overrides=_SMALL))
register_model(Preset("progan-256", "progan", ProGANModel, ProGANConfig(height=256, width=256),
                      test_overrides=_SMALL))
register_model(Preset("progan-64", "progan", ProGANModel, ProGANConfig(height=64, width=64),
                      test_overrides=_SMALL))
