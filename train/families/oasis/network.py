"""OASIS (Schönfeld et al., ICLR 2021): the SPADE generator with 3D noise, no encoder.

The generator downsamples ``cat(z, label)`` to the latent grid, applies a 3x3 conv
(``fc``) and six SPADE residual blocks (``body.0``..``body.5``, one x2 upsampling between
each pair), then ``conv_img`` and tanh. The 64-d noise ``z ~ N(0, I)`` is broadcast over
every pixel and concatenated *in front of* the one-hot label map, so every SPADE
conditions on ``z_dim + num_classes`` channels ("3D noise"; in the official code the
noise is drawn inside ``forward``, here it is an input).

The noise lives per pixel, which is what lets one region be redrawn while the rest stays
(the paper's local re-sampling; the official code has no call for it). The deployed graph
therefore takes it per class: ``codes`` (N, C, 64), and each pixel reads the row of its
class (gathered from the class ids at every resolution, see ``LabelMap``). The same row
for every class is the official broadcast noise, value for value, so the image is the
same. Training keeps the official one vector per image; ``forward`` also takes a spatial
map (N, 64, H, W).

Attribute names follow boschresearch/OASIS (``fc``, ``body.i.conv_0``,
``body.i.norm_0.first_norm``, ``conv_img``), so its released ``best_EMA.pth`` (the EMA
generator) loads key for key into ``OASISModel.netG`` via ``official_parts()["EMA"]``;
``best_G.pth`` has the same layout (part ``"G"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.label_map import (
    LabelMap,
    label_input,
    read_label,
    resize_label,
)
from sdk.train.models.layers.onehot import mark_one_hot_input, mark_spade_label_convs
from sdk.train.models.layers.resblocks import SPADEResnetBlock
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import GraphSpec, Kind, SynthesisModel, TensorSpec, label_spec


@dataclass(frozen=True)
class OASISConfig:
    num_classes: int  # one-hot label channels, the dontcare label included
    height: int
    width: int
    channels_G: int = 64  # widths are 16, 16, 16, 8, 4, 2, 1 x channels_G
    num_res_blocks: int = 6
    z_dim: int = 64
    param_free_norm: str = "syncbatch"  # SPADE's norm: syncbatch (official), batch, instance
    spade_ks: int = 3
    spade_hidden: int = 128
    spectral_norm: bool = True  # on the residual blocks' convs (official default)
    palette: str | None = None


class OASISGenerator(nn.Module):
    """``forward(seg, z) -> image in [-1, 1]``; ``seg`` one-hot (N, C, H, W) or a
    ``LabelMap``; ``z`` the 3D noise: one vector per image (N, z_dim) broadcast over the
    pixels (official), one per class (N, C, z_dim), or a map (N, z_dim, H, W)."""

    def __init__(self, cfg: OASISConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels_G
        widths = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, 1 * ch][-(cfg.num_res_blocks + 1):]
        if len(widths) != cfg.num_res_blocks + 1:
            raise ValueError(f"OASIS supports at most 6 residual blocks, got {cfg.num_res_blocks}")
        factor = 2 ** (cfg.num_res_blocks - 1)
        if cfg.height % factor or cfg.width % factor:
            raise ValueError(f"OASIS with {cfg.num_res_blocks} blocks needs height and width "
                             f"divisible by {factor}; got {cfg.height}x{cfg.width}")
        self.init_h, self.init_w = cfg.height // factor, cfg.width // factor
        cond_nc = cfg.num_classes + cfg.z_dim
        self.fc = nn.Conv2d(cond_nc, widths[0], 3, padding=1)
        self.body = nn.ModuleList(
            SPADEResnetBlock(widths[i], widths[i + 1], cond_nc, norm=cfg.param_free_norm,
                             kernel_size=cfg.spade_ks, spectral=cfg.spectral_norm,
                             hidden=cfg.spade_hidden, norm_attr="first_norm")
            for i in range(cfg.num_res_blocks))
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        one_hot = (cfg.z_dim, cfg.z_dim + cfg.num_classes)  # cond = cat(z3d, label)
        mark_spade_label_convs(self, *one_hot)
        mark_one_hot_input(self.fc, *one_hot)

    def forward(self, seg: LabelMap | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        cond = self.condition(seg, z)
        x = read_label(self.fc, resize_label(cond, (self.init_h, self.init_w)))
        for i, block in enumerate(self.body):
            x = block(x, cond)
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def condition(self, seg: LabelMap | torch.Tensor, z: torch.Tensor) -> LabelMap | torch.Tensor:
        """``cat(z3d, seg)``: the 3D noise in front of the label channels, what every layer reads."""
        n, _, h, w = seg.shape
        d = self.cfg.z_dim
        if z.dim() == 2:  # one vector per image: the same z at every pixel (kept 1x1 in a LabelMap)
            z3d = z.view(n, d, 1, 1)
            return seg.with_before(z3d) if isinstance(seg, LabelMap) else torch.cat((z3d.expand(n, d, h, w), seg), 1)
        if z.dim() == 3:  # one vector per class: each pixel reads its class's row
            if tuple(z.shape[1:]) != (self.cfg.num_classes, d):
                raise ValueError(f"per-class noise must be (N, {self.cfg.num_classes}, {d}), got {tuple(z.shape)}")
            if isinstance(seg, LabelMap):
                return seg.with_before_by_class(z)
            # one-hot: the matching row times 1, plus zeros (exactly the row)
            return torch.cat((torch.einsum("nchw,ncd->ndhw", seg, z), seg), 1)
        if z.dim() == 4:  # a map at the label's size
            return seg.with_before(z) if isinstance(seg, LabelMap) else torch.cat((z, seg), 1)
        raise ValueError(f"z must be (N, {d}), (N, C, {d}) or (N, {d}, H, W), got {tuple(z.shape)}")


class LabelNoiseGraph(nn.Module):
    """Deploy view of a generator of ``(label, z)``: class ids and ``z`` -> image, clamped to
    [-1, 1] where the generator ends without tanh (DP-SIMS)."""

    def __init__(self, netG: nn.Module, clamp: bool = False) -> None:
        super().__init__()
        self.netG = netG
        self.clamp = clamp

    def forward(self, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self.netG(label_input(label, self.netG.cfg.num_classes), z)
        return out.clamp(-1.0, 1.0) if self.clamp else out


class OASISModel(SynthesisModel):
    """OASIS generator; ``graphs()["model"]``: ``(label, codes) -> image``, the noise per
    class. ``noise_input = "latent"`` gives the graph of bundles before per-class noise,
    ``(label, z) -> image`` (old bundles run on the torch backend, benchmarks compare).
    DP-SIMS, whose generator extends OASIS', reuses this model with its own generator and
    a ``latent``."""

    family = "oasis"
    task = "semantic"
    generator: type[nn.Module] = OASISGenerator
    distribution = "normal"  # of z
    clamp = False  # the deploy graph clamps a generator without tanh
    noise_input = "codes"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.netG = self.generator(config)

    def forward(self, seg: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.netG(seg, z)

    def graphs(self) -> dict[str, GraphSpec]:
        cfg = self.config
        h, w = cfg.height, cfg.width
        attrs: dict[str, Any] = {"distribution": self.distribution}
        if self.noise_input == "codes":
            # drawn once per image and given to every class, as trained; rows differ where resampled
            noise = TensorSpec("codes", Kind.CODES, (None, cfg.num_classes, cfg.z_dim), {**attrs, "broadcast": True})
        elif self.noise_input == "latent":
            noise = TensorSpec("z", Kind.LATENT, (None, cfg.z_dim), attrs)
        else:
            raise ValueError(f"noise_input {self.noise_input!r}: use 'codes' or 'latent'")
        return {"model": GraphSpec(
            LabelNoiseGraph(self.netG, self.clamp),
            (label_spec(cfg.num_classes, h, w), noise),
            (TensorSpec("image", Kind.IMAGE, (None, 3, h, w)),))}

    def official_parts(self) -> dict[str, nn.Module]:
        """``best_EMA.pth`` (released, used for testing) and ``best_G.pth`` both load into netG."""
        return {"EMA": self.netG, "G": self.netG}


def _preset(name: str, paper_params: float | None, source: str, **cfg: Any) -> None:
    register_model(Preset(
        name=name, family="oasis", model_cls=OASISModel, config=OASISConfig(**cfg),
        paper_params=paper_params, paper_source=source,
        test_overrides={"channels_G": 4, "spade_hidden": 8}))


# Datasets as the official dataloaders set them: label_nc + 1 dontcare channel, no
# instance maps; Cityscapes is trained at 256x512 (aspect ratio 2).
_preset("oasis-ade20k", 74.3e6, "OASIS paper, generator parameters on ADE20K",
        num_classes=151, height=256, width=256, palette="ade20k")
_preset("oasis-cityscapes", None, "", num_classes=35, height=256, width=512, palette="cityscapes")
_preset("oasis-coco", None, "", num_classes=183, height=256, width=256, palette="coco")
