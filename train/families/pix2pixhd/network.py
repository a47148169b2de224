"""pix2pixHD (Wang et al., CVPR 2018): global generator, local enhancer, instance-wise
feature encoder and multi-scale PatchGAN discriminators.

Module layout follows NVIDIA/pix2pixHD so its released ``latest_net_G.pth`` (and
``net_D`` / ``net_E``) load key for key: the generator is one ``nn.Sequential`` named
``model`` (reflection pad, 7x7 conv, norm, ReLU; stride-2 3x3 convs; residual blocks with
a ``conv_block`` Sequential; stride-2 3x3 transposed convs; 7x7 conv and tanh). The local
enhancer keeps that Sequential without its last three layers as ``model`` and adds
``model1_1`` (front end at full resolution) and ``model1_2`` (residual blocks, upsampling
and output layers). Discriminator ``i`` of the feature-matching layout is
``scale{i}_layer{j}``; the full-resolution input goes to the highest ``i``.

Inputs: the one-hot label map and the instance-edge map are computed outside the
network (the SDK fills them) and concatenated in the graph.

The multi-scale discriminator is pix2pixHD's own (not the shared SPADE-named one in
``discriminators.py``) so the official ``net_D`` keys load; the GAN, feature-matching
and VGG losses come from ``train.losses``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.label_map import conv_dtype, dense_label, label_input
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import (
    GraphSpec,
    SynthesisModel,
    TensorSpec,
    edge_spec,
    label_spec,
)

if TYPE_CHECKING:
    from .discriminator import MultiscaleDiscriminator

NormFactory = Callable[[int], nn.Module]


def norm_factory(kind: str) -> NormFactory:
    """``instance`` (no affine, no running stats, as the official default) or ``batch``."""
    if kind == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False)
    if kind == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True)
    raise ValueError(f"unknown norm {kind!r}; use instance or batch")


@dataclass(frozen=True)
class Pix2PixHDConfig:
    num_classes: int = 35  # one-hot label channels (Cityscapes ids 0..34)
    height: int = 512
    width: int = 1024
    instance_edge: bool = True
    netG: str = "global"  # "global" or "local" (one local enhancer per extra 2x)
    ngf: int = 64  # width of the outermost generator stage (the local enhancer's, if any)
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 1
    n_blocks_local: int = 3
    norm: str = "instance"
    instance_feat: bool = False  # condition on instance-wise encoded features (training only)
    feat_num: int = 3
    nef: int = 16
    n_downsample_E: int = 4
    ndf: int = 64
    n_layers_D: int = 3
    num_D: int = 2
    palette: str | None = None

    @property
    def input_nc(self) -> int:
        return self.num_classes + int(self.instance_edge) + (self.feat_num if self.instance_feat else 0)


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, norm, ReLU, pad, conv3x3, norm](x)`` with reflection padding."""

    def __init__(self, dim: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _stem(cin: int, cout: int, norm: NormFactory) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), norm(cout), nn.ReLU(True)]


def _down(cin: int, cout: int, norm: NormFactory) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), norm(cout), nn.ReLU(True)]


def _up(cin: int, cout: int, norm: NormFactory) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), norm(cout), nn.ReLU(True)]


def _head(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), nn.Tanh()]


def _encoder_decoder(cin: int, cout: int, ngf: int, n_down: int, n_blocks: int,
                     norm: NormFactory) -> list[nn.Module]:
    """Stem, ``n_down`` halvings, residual blocks at the bottom, ``n_down`` doublings, head."""
    layers = _stem(cin, ngf, norm)
    for i in range(n_down):
        layers += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm)
    layers += [ResnetBlock(ngf * 2**n_down, norm) for _ in range(n_blocks)]
    for i in range(n_down, 0, -1):
        layers += _up(ngf * 2**i, ngf * 2 ** (i - 1), norm)
    return layers + _head(ngf, cout)


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """The official input pyramid: 3x3 average, stride 2, padding not counted."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class GlobalGenerator(nn.Module):
    """G1 of the paper: a residual encoder-decoder at the base resolution."""

    def __init__(self, input_nc: int, output_nc: int = 3, ngf: int = 64, n_downsampling: int = 4,
                 n_blocks: int = 9, norm: str = "instance") -> None:
        super().__init__()
        self.model = nn.Sequential(*_encoder_decoder(input_nc, output_nc, ngf, n_downsampling,
                                                     n_blocks, norm_factory(norm)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: the global generator (without its output layers) runs on the 2x
    downsampled input; each enhancer adds its full-resolution front end to that feature
    map, then refines and upsamples it."""

    def __init__(self, input_nc: int, output_nc: int = 3, ngf: int = 32, n_downsample_global: int = 4,
                 n_blocks_global: int = 9, n_local_enhancers: int = 1, n_blocks_local: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        nl = norm_factory(norm)
        self.n_local_enhancers = n_local_enhancers
        ngf_global = ngf * 2**n_local_enhancers
        layers = _encoder_decoder(input_nc, output_nc, ngf_global, n_downsample_global, n_blocks_global, nl)
        self.model = nn.Sequential(*layers[:-3])  # the global output head is dropped
        for n in range(1, n_local_enhancers + 1):
            width = ngf * 2 ** (n_local_enhancers - n)
            front = _stem(input_nc, width, nl) + _down(width, 2 * width, nl)
            back: list[nn.Module] = [ResnetBlock(2 * width, nl) for _ in range(n_blocks_local)]
            back += _up(2 * width, width, nl)
            if n == n_local_enhancers:
                back += _head(ngf, output_nc)
            setattr(self, f"model{n}_1", nn.Sequential(*front))
            setattr(self, f"model{n}_2", nn.Sequential(*back))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(pyramid_down(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            front, back = getattr(self, f"model{n}_1"), getattr(self, f"model{n}_2")
            out = back(front(pyramid[self.n_local_enhancers - n]) + out)
        return out


def instance_average(features: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
    """Replace every pixel's features by the mean over its instance (per sample).

    ``instance_ids``: (N, 1, H, W) integer ids. Vectorised with ``scatter_add``; the
    official encoder loops over instances, channels and samples.
    """
    n, c, h, w = features.shape
    ids = instance_ids.long().reshape(n, 1, h * w)
    _, inverse = torch.unique(ids, return_inverse=True)  # compact ids 0..K-1
    k = int(inverse.max()) + 1
    flat = features.reshape(n, c, h * w)
    idx = inverse.expand(n, c, h * w)
    sums = flat.new_zeros(n, c, k).scatter_add_(2, idx, flat)
    counts = flat.new_zeros(n, 1, k).scatter_add_(2, inverse, torch.ones_like(flat[:, :1]))
    means = sums / counts.clamp_min(1)
    return means.gather(2, idx).reshape(n, c, h, w)


class Encoder(nn.Module):
    """E of the paper: an encoder-decoder on the real image whose output is averaged per
    instance (``feat_num`` channels), for training with instance-wise features."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 16, n_downsampling: int = 4,
                 norm: str = "instance") -> None:
        super().__init__()
        self.model = nn.Sequential(*_encoder_decoder(input_nc, output_nc, ngf, n_downsampling, 0,
                                                     norm_factory(norm)))

    def forward(self, image: torch.Tensor, instance_ids: torch.Tensor) -> torch.Tensor:
        return instance_average(self.model(image), instance_ids)


class _SynthesisGraph(nn.Module):
    """Deploy view: ``label`` (+ ``instance_edge``) concatenated, then the generator."""

    def __init__(self, netG: nn.Module, num_classes: int, instance_edge: bool) -> None:
        super().__init__()
        self.netG = netG
        self.num_classes = num_classes
        self.instance_edge = instance_edge

    def forward(self, label: torch.Tensor, instance_edge: torch.Tensor | None = None) -> torch.Tensor:
        if self.instance_edge and instance_edge is None:
            raise ValueError("this pix2pixHD preset takes an instance_edge map")
        # The generator pads by reflection and averages the map for its global branch:
        # it reads the dense one-hot, made here on the device in the generator's dtype
        # (FP16 / BF16 when deployed so; an FP32 one-hot into a half-precision conv fails).
        seg = label_input(label, self.num_classes, instance_edge if self.instance_edge else None)
        return self.netG(dense_label(seg, conv_dtype(self.netG)))


class Pix2PixHDModel(SynthesisModel):
    """pix2pixHD label-to-image synthesis. ``netG`` is the deployed generator; ``netE``
    exists only with ``instance_feat`` (training). Discriminators come from
    :meth:`build_discriminator`, the objective from :func:`pix2pixhd_losses`."""

    family = "pix2pixhd"
    task = "semantic"

    def __init__(self, config: Pix2PixHDConfig) -> None:
        super().__init__(config)
        c = config
        if c.netG == "global":
            self.netG: nn.Module = GlobalGenerator(c.input_nc, 3, c.ngf, c.n_downsample_global,
                                                   c.n_blocks_global, c.norm)
            factor = 2**c.n_downsample_global
        elif c.netG == "local":
            self.netG = LocalEnhancer(c.input_nc, 3, c.ngf, c.n_downsample_global, c.n_blocks_global,
                                      c.n_local_enhancers, c.n_blocks_local, c.norm)
            factor = 2 ** (c.n_downsample_global + c.n_local_enhancers)
        else:
            raise ValueError(f"netG must be 'global' or 'local', got {c.netG!r}")
        if c.height % factor or c.width % factor:
            raise ValueError(f"pix2pixHD ({c.netG}) needs height and width divisible by {factor}; "
                             f"got {c.height}x{c.width}")
        self.netE = Encoder(3, c.feat_num, c.nef, c.n_downsample_E, c.norm) if c.instance_feat else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netG(x)

    def build_discriminator(self) -> "MultiscaleDiscriminator":
        """The official multi-scale D on (label [+ edge], image), feature-matching layout."""
        from .discriminator import (
            MultiscaleDiscriminator,  # it builds on this module's layers
        )

        c = self.config
        return MultiscaleDiscriminator(c.num_classes + int(c.instance_edge) + 3, c.ndf, c.n_layers_D,
                                       c.norm, c.num_D, intermediate=True)

    def graphs(self) -> dict[str, GraphSpec]:
        c = self.config
        if c.instance_feat:
            raise NotImplementedError("pix2pixHD with instance-wise features is supported for training "
                                      "only; deploy a preset without instance_feat")
        h, w = c.height, c.width
        inputs = [label_spec(c.num_classes, h, w)]
        if c.instance_edge:
            inputs.append(edge_spec(h, w))
        return {"model": GraphSpec(_SynthesisGraph(self.netG, c.num_classes, c.instance_edge), tuple(inputs),
                                   (TensorSpec("image", "image", (None, 3, h, w)),))}

    def official_parts(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"net_G": self.netG}
        if self.netE is not None:
            parts["net_E"] = self.netE
        return parts


_CITYSCAPES = dict(num_classes=35, instance_edge=True, palette="cityscapes")

# As the official scripts: 512p trains the global generator (ngf 64, two Ds); 1024p adds
# one local enhancer (ngf 32, so G1 keeps width 64) and three Ds. "1024"/"2048" name the width.
register_model(Preset(
    "pix2pixhd-cityscapes-1024", "pix2pixhd", Pix2PixHDModel,
    Pix2PixHDConfig(height=512, width=1024, netG="global", ngf=64, num_D=2, **_CITYSCAPES),
    test_overrides={"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 1,
                    "height": 32, "width": 64}))
register_model(Preset(
    "pix2pixhd-cityscapes-2048", "pix2pixhd", Pix2PixHDModel,
    Pix2PixHDConfig(height=1024, width=2048, netG="local", ngf=32, num_D=3, **_CITYSCAPES),
    test_overrides={"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 1, "n_blocks_local": 1,
                    "height": 32, "width": 64}))
