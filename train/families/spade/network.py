"""SPADE (Park et al., CVPR 2019): the SPADE residual generator and the VAE style encoder.

Module and attribute names follow NVlabs/SPADE (``fc``, ``head_0``, ``G_middle_0``,
``up_0``..``up_4``, ``conv_img``; encoder ``layer1``..``layer6``, ``fc_mu``,
``fc_var``) so the released ``latest_net_G.pth`` / ``latest_net_E.pth`` load key for
key into ``SPADEModel.netG`` / ``SPADEModel.netE`` (see :func:`load_official`).
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
from sdk.train.models.layers.norm import nonspade_norm_layer, parse_spade_config
from sdk.train.models.layers.onehot import mark_one_hot_input, mark_spade_label_convs
from sdk.train.models.layers.resblocks import SPADEResnetBlock
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import (
    GraphSpec,
    Kind,
    SynthesisModel,
    TensorSpec,
    edge_spec,
    label_spec,
)

UPSAMPLING_LAYERS = {"normal": 5, "more": 6, "most": 7}


@dataclass(frozen=True)
class SPADEConfig:
    num_classes: int  # one-hot label channels (the dataset's dontcare label included)
    height: int
    width: int
    instance_edge: bool = False  # an instance-edge channel is appended to the label map
    ngf: int = 64
    num_upsampling_layers: str = "normal"
    use_vae: bool = True  # z -> fc path + style encoder (multi-modal); False: fc on the label map
    z_dim: int = 256
    norm_G: str = "spectralspadesyncbatch3x3"
    norm_E: str = "spectralinstance"
    spade_hidden: int = 128
    palette: str | None = None


class SPADEGenerator(nn.Module):
    """The SPADE generator: fc -> head_0 -> G_middle_0/1 -> up_0..up_3 (up_4) -> conv_img."""

    def __init__(self, cfg: SPADEConfig) -> None:
        super().__init__()
        nf = cfg.ngf
        self.cfg = cfg
        n_up = UPSAMPLING_LAYERS[cfg.num_upsampling_layers]
        if cfg.width % 2**n_up or cfg.height % 2**n_up:
            raise ValueError(f"SPADE with {n_up} upsamplings needs height and width divisible by "
                             f"{2**n_up}; got {cfg.height}x{cfg.width}")
        self.sh, self.sw = cfg.height // 2**n_up, cfg.width // 2**n_up
        label_nc = cfg.num_classes + int(cfg.instance_edge)
        spectral = cfg.norm_G.startswith("spectral")
        norm, ks = parse_spade_config(cfg.norm_G.removeprefix("spectral"))

        def block(fin: int, fout: int) -> SPADEResnetBlock:
            return SPADEResnetBlock(fin, fout, label_nc, norm=norm, kernel_size=ks,
                                    spectral=spectral, hidden=cfg.spade_hidden)

        if cfg.use_vae:
            self.fc = nn.Linear(cfg.z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(label_nc, 16 * nf, 3, padding=1)
        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if cfg.num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)
        mark_spade_label_convs(self, 0, cfg.num_classes)
        if not cfg.use_vae:
            mark_one_hot_input(self.fc, 0, cfg.num_classes)

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, seg: LabelMap | torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """``seg``: the one-hot label (+ instance edge) tensor, or a ``LabelMap``."""
        if self.cfg.use_vae:
            if z is None:
                raise ValueError("this SPADE generator uses the VAE path: pass z of shape (N, z_dim)")
            x = self.fc(z).view(-1, 16 * self.cfg.ngf, self.sh, self.sw)
        else:
            x = read_label(self.fc, resize_label(seg, (self.sh, self.sw)))
        x = self.head_0(x, seg)
        x = self.up(x)
        x = self.G_middle_0(x, seg)
        if self.cfg.num_upsampling_layers in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = self.up(x)
            x = getattr(self, name)(x, seg)
        if self.cfg.num_upsampling_layers == "most":
            x = self.up(x)
            x = self.up_4(x, seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)


class ConvEncoder(nn.Module):
    """VAE style encoder: six stride-2 3x3 convs (spectral norm + InstanceNorm) on the
    image resized to 256x256, then ``fc_mu`` / ``fc_var`` to a ``z_dim`` Gaussian."""

    def __init__(self, cfg: SPADEConfig) -> None:
        super().__init__()
        ndf = cfg.ngf

        def conv(cin: int, cout: int) -> nn.Module:
            return nonspade_norm_layer(nn.Conv2d(cin, cout, 3, stride=2, padding=1), cfg.norm_E)

        self.layer1 = conv(3, ndf)
        self.layer2 = conv(ndf, ndf * 2)
        self.layer3 = conv(ndf * 2, ndf * 4)
        self.layer4 = conv(ndf * 4, ndf * 8)
        self.layer5 = conv(ndf * 8, ndf * 8)
        # The input is always resized to 256x256, so six stride-2 convs always reach 4x4
        # (the official code drops layer6 below crop size 256, where its fc then breaks).
        self.layer6 = conv(ndf * 8, ndf * 8)
        self.so = 4
        self.fc_mu = nn.Linear(ndf * 8 * self.so * self.so, cfg.z_dim)
        self.fc_var = nn.Linear(ndf * 8 * self.so * self.so, cfg.z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-2:] != (256, 256):
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        x = self.layer1(x)
        for layer in (self.layer2, self.layer3, self.layer4, self.layer5, self.layer6):
            x = layer(F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


class _SynthesisGraph(nn.Module):
    """Deploy view of the generator: separate ``label`` / ``instance_edge`` / ``z`` inputs."""

    def __init__(self, netG: SPADEGenerator) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        cfg = self.netG.cfg
        seg = label_input(inputs[0], cfg.num_classes, inputs[1] if cfg.instance_edge else None)
        z = inputs[-1] if cfg.use_vae else None
        return self.netG(seg, z)


class SPADEModel(SynthesisModel):
    family = "spade"
    task = "semantic"

    def __init__(self, config: SPADEConfig) -> None:
        super().__init__(config)
        self.netG = SPADEGenerator(config)
        self.netE = ConvEncoder(config) if config.use_vae else None

    def forward(self, seg: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.netG(seg, z)

    def graphs(self) -> dict[str, GraphSpec]:
        cfg = self.config
        h, w = cfg.height, cfg.width
        inputs = [label_spec(cfg.num_classes, h, w)]
        if cfg.instance_edge:
            inputs.append(edge_spec(h, w))
        if cfg.use_vae:
            inputs.append(TensorSpec("z", Kind.LATENT, (None, cfg.z_dim), {"distribution": "normal"}))
        graphs = {"model": GraphSpec(_SynthesisGraph(self.netG), tuple(inputs),
                                     (TensorSpec("image", Kind.IMAGE, (None, 3, h, w)),))}
        if self.netE is not None:
            graphs["encoder"] = GraphSpec(
                self.netE, (TensorSpec("image", Kind.IMAGE, (None, 3, h, w)),),
                (TensorSpec("mu", Kind.MU, (None, cfg.z_dim)), TensorSpec("logvar", Kind.LOGVAR, (None, cfg.z_dim))))
        return graphs

    def official_parts(self) -> dict[str, nn.Module]:
        """Official checkpoint file stem -> the submodule it loads into, key for key."""
        parts: dict[str, nn.Module] = {"net_G": self.netG}
        if self.netE is not None:
            parts["net_E"] = self.netE
        return parts


def _preset(name: str, paper_params: float | None, source: str, **cfg: Any) -> None:
    for vae in (False, True):
        register_model(Preset(
            name=name + ("-vae" if vae else ""), family="spade", model_cls=SPADEModel,
            config=SPADEConfig(use_vae=vae, **cfg),
            # The paper's parameter table and the released checkpoints are the label-only
            # generators (fc on the downsampled label map); the -vae variants add the
            # z -> fc path and the style encoder for multi-modal / style-guided synthesis.
            paper_params=None if vae else paper_params, paper_source="" if vae else source,
            # CI size: narrow and at half resolution; same blocks, same label channels.
            test_overrides={"ngf": 8, "spade_hidden": 16,
                            "height": cfg["height"] // 2, "width": cfg["width"] // 2}))


# Presets as NVlabs/SPADE trains them: Cityscapes 35 labels + instance edges, 'more'
# upsampling (as the released checkpoint); ADE20K 150 + dontcare; COCO-Stuff 182 +
# dontcare + instance edges.
_preset("spade-cityscapes", None, "",
        num_classes=35, height=256, width=512, instance_edge=True,
        num_upsampling_layers="more", palette="cityscapes")
_preset("spade-ade20k", 96.5e6, "SPADE paper, generator parameters on ADE20K",
        num_classes=151, height=256, width=256, palette="ade20k")
_preset("spade-coco", None, "",
        num_classes=183, height=256, width=256, instance_edge=True, palette="coco")
