"""GroupDNet (Zhu et al., CVPR 2020, "Semantically Multi-modal Image Synthesis").

Every class has its own latent code. The encoder turns the image into one masked copy
per class (stacked on channels, class ``c`` at channels ``3c..3c+2``) and runs convs
grouped by class, so class ``c``'s ``mu`` / ``logvar`` only see class ``c``'s pixels.
The decoder starts from the stacked codes with a conv grouped by class and then runs
CG-Blocks whose group number decreases towards the output (paper, appendix Table 4),
so early layers keep classes apart and late layers blend them.

Module names follow Seanseattle/SMIS (``fc``, ``head_0``, ``G_middle_0/1``,
``up_0``..``up_3`` (``up_4`` on ADE20K), ``conv_img``; encoder ``layer1``..``layer6``,
``fc_mu``, ``fc_var``) so the released ``latest_net_G.pth`` / ``latest_net_E.pth``
load key for key through :meth:`GroupDNetModel.official_parts`.

Where the paper and the official code differ, we follow the code (the released
checkpoints were trained with it):

* Latent codes: 8 channels per class at the decoder's 4x4 (DeepFashion, ADE20K) or
  4x8 (Cityscapes) start, i.e. ``D = 8 * sh * sw`` = 128 or 256 values per class; the
  codes ``(N, C, D)`` are the official ``(N, 8C, sh, sw)`` tensor, class-major.
* Encoder widths: the code uses ``ndf`` = 256 (DeepFashion), 350 (Cityscapes) and
  604 (ADE20K) with groups = number of classes, not Table 4's encoder C = 64 / 8 / 3.
  Six stride-2 layers always (the code adds ``layer6`` for crop sizes >= 256, which all
  its configurations use, and the latent grid needs it).
* Encoder input: the code crops each class's masked image to the class's bounding box
  and resizes it (nearest) to the full resolution before encoding; we do the same
  in-graph (``crop_classes=True``, gathers with static shapes). The code finds the box
  from non-zero pixels of the masked image, we from the label mask (they differ only
  where an image pixel is exactly black in every channel).
* CG-Norm hidden widths and groups differ per dataset (see :class:`CGNormWidths`);
  Cityscapes feeds each class mask together with the instance edge map (2 channels
  per class) and groups CG-Norm by class whatever the block's group number.
* ADE20K: the head runs at ``16 * num_classes`` channels, ``G_middle_0`` widens to
  ``32 * ngf``, and ``up_4`` (groups 1, Table 4's last entry) is built - its weights are
  in the checkpoint and counted in the parameters - but the code never runs it:
  ``conv_img`` reads ``up_3``'s ``2 * ngf`` channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.models.layers.cgnorm import CG_LAYOUTS, CGBlock
from sdk.train.models.layers.label_map import (
    LabelMap,
    dense_label,
    label_input,
    resize_label,
)
from sdk.train.models.layers.norm import nonspade_norm_layer, parse_spade_config
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import (
    GraphSpec,
    Kind,
    SynthesisModel,
    TensorSpec,
    edge_spec,
    label_spec,
)

N_UP = 6  # the official configurations all use num_upsampling_layers='more'
BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4")


@dataclass(frozen=True)
class GroupDNetConfig:
    num_classes: int  # one-hot label channels = number of latent codes (C)
    height: int
    width: int
    layout: str  # "deepfashion" | "cityscapes" | "ade20k": widths of the official code
    groups: tuple[int, ...]  # decoder group numbers: head_0, G_middle_0/1, up_0..up_3 (, up_4)
    ngf: int = 160  # decoder width (Table 4's decoder C)
    encoder_ndf: int = 256
    instance_edge: bool = False  # Cityscapes: an instance-edge map is paired with each class
    latent_nc: int = 8  # latent channels per class on the sh x sw grid
    norm_G: str = "spectralspadesyncbatch3x3"
    norm_E: str = "spectralinstance"
    crop_classes: bool = True  # encoder sees each class cropped to its box, as the official code
    palette: str | None = None

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.height // 2**N_UP, self.width // 2**N_UP

    @property
    def code_dim(self) -> int:
        """D, the length of one class's latent code."""
        sh, sw = self.latent_hw
        return self.latent_nc * sh * sw


def _block_widths(cfg: GroupDNetConfig) -> tuple[int, list[tuple[int, int]], int]:
    """(fc output channels, (fin, fout) per block, conv_img input channels)."""
    nf = cfg.ngf
    if cfg.layout == "ade20k":
        head = 16 * cfg.num_classes
        chans = [(head, head), (head, 32 * nf), (32 * nf, 16 * nf), (16 * nf, 16 * nf),
                 (16 * nf, 8 * nf), (8 * nf, 4 * nf), (4 * nf, 2 * nf), (2 * nf, nf)]
        return head, chans, 2 * nf  # up_4 is built but not run
    chans = [(16 * nf, 16 * nf)] * 3 + [(16 * nf, 8 * nf), (8 * nf, 4 * nf), (4 * nf, 2 * nf),
                                        (2 * nf, nf)]
    return 16 * nf, chans, nf


class GroupDNetGenerator(nn.Module):
    """Decoder: grouped ``fc`` on the codes -> CG-Blocks with upsampling -> ``conv_img``."""

    def __init__(self, cfg: GroupDNetConfig) -> None:
        super().__init__()
        if cfg.layout not in CG_LAYOUTS:
            raise ValueError(f"unknown layout {cfg.layout!r}; use one of {CG_LAYOUTS}")
        if cfg.height % 2**N_UP or cfg.width % 2**N_UP:
            raise ValueError(f"GroupDNet upsamples {N_UP} times: height and width must be "
                             f"divisible by {2**N_UP}; got {cfg.height}x{cfg.width}")
        if cfg.instance_edge != (cfg.layout == "cityscapes"):
            raise ValueError("the instance-edge input goes with the cityscapes layout (and only it)")
        self.cfg = cfg
        fc_out, chans, final_nc = _block_widths(cfg)
        if len(cfg.groups) != len(chans):
            raise ValueError(f"layout {cfg.layout!r} has {len(chans)} CG-Blocks; got "
                             f"{len(cfg.groups)} group numbers")
        c = cfg.num_classes
        norm, ks = parse_spade_config(cfg.norm_G.removeprefix("spectral"))
        spectral = cfg.norm_G.startswith("spectral")
        # one group per class: class c's code only feeds its own slice of the features
        self.fc = nn.Conv2d(c * cfg.latent_nc, fc_out, 3, padding=1, groups=c)
        for name, (fin, fout), g in zip(BLOCKS, chans, cfg.groups):
            setattr(self, name, CGBlock(fin, fout, g, c, layout=cfg.layout, norm=norm,
                                        kernel_size=ks, spectral=spectral))
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def _seg(self, seg: torch.Tensor) -> torch.Tensor:
        if not self.cfg.instance_edge:
            return seg
        # pair every class mask with the edge map: channels (class0, edge, class1, edge, ...)
        label, edge = seg[:, :-1], seg[:, -1:]
        n, c, h, w = label.shape
        return torch.stack((label, edge.expand_as(label)), 2).reshape(n, 2 * c, h, w)

    def forward(self, seg: LabelMap | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``seg``: one-hot label (N, C, H, W), with the instance edge appended on
        Cityscapes, or a ``LabelMap``; ``z``: codes (N, C, D) or the official (N, 8C, sh, sw).

        Each block reads the label map resized (nearest) to its own resolution once, for
        all its CG-Norms: the same values as resizing in every norm.
        """
        sh, sw = self.cfg.latent_hw
        x = self.fc(z.reshape(z.shape[0], -1, sh, sw))

        def at(x: torch.Tensor) -> torch.Tensor:
            return self._seg(dense_label(resize_label(seg, x.shape[-2:]), x.dtype))

        x = self.head_0(x, at(x))
        x = self.up(x)
        x = self.G_middle_0(x, at(x))
        x = self.up(x)
        x = self.G_middle_1(x, at(x))
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = self.up(x)
            x = getattr(self, name)(x, at(x))
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def crop_classes(image: torch.Tensor, label: torch.Tensor, resize: bool = True) -> torch.Tensor:
    """Stack one masked copy of ``image`` per class: (N, 3, H, W), (N, C, H, W) -> (N, 3C, H, W).

    With ``resize`` each copy is cropped to its class's bounding box and resized back to
    H x W with nearest sampling (``F.interpolate``'s index rule), as the official
    encoder input; absent classes stay all-zero. Static shapes only, so it exports.
    """
    n, c, h, w = label.shape
    masked = image.unsqueeze(1) * label.unsqueeze(2)  # (N, C, 3, H, W)
    if resize:
        present = label > 0.5
        rows = _nearest_index(present.any(3), h)  # (N, C, H)
        cols = _nearest_index(present.any(2), w)  # (N, C, W)
        masked = masked.gather(3, rows[:, :, None, :, None].expand(n, c, 3, h, w))
        masked = masked.gather(4, cols[:, :, None, None, :].expand(n, c, 3, h, w))
    return masked.reshape(n, 3 * c, h, w)


def _nearest_index(present: torch.Tensor, size: int) -> torch.Tensor:
    """Source index of each output position when the span of ``present`` (N, C, L) is
    stretched to ``size`` positions; the whole axis where nothing is present."""
    pos = torch.arange(size, device=present.device)
    first = torch.where(present, pos, size).amin(-1, keepdim=True)
    last = torch.where(present, pos, -1).amax(-1, keepdim=True)
    empty = first > last
    first = torch.where(empty, 0, first)
    last = torch.where(empty, size - 1, last)
    scale = (last - first + 1).float() / size
    return first + torch.floor(pos.float() * scale).long()


class GroupEncoder(nn.Module):
    """Group encoder on the stacked per-class images (N, 3C, H, W): six stride-2 convs
    (spectral norm + InstanceNorm) and ``fc_mu`` / ``fc_var`` convs, all grouped by class.
    Returns ``mu, logvar`` as (N, C * latent_nc, sh, sw), class-major."""

    def __init__(self, cfg: GroupDNetConfig) -> None:
        super().__init__()
        c, ndf = cfg.num_classes, cfg.encoder_ndf
        if ndf % c:
            raise ValueError(f"encoder_ndf={ndf} must be a multiple of num_classes={c}")
        widths = [3 * c, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf, 8 * ndf]
        for i in range(6):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, groups=c)
            setattr(self, f"layer{i + 1}", nonspade_norm_layer(conv, cfg.norm_E))
        self.fc_mu = nn.Conv2d(8 * ndf, cfg.latent_nc * c, 3, padding=1, groups=c)
        self.fc_var = nn.Conv2d(8 * ndf, cfg.latent_nc * c, 3, padding=1, groups=c)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layer1(x)
        for i in range(2, 7):
            x = getattr(self, f"layer{i}")(F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2)
        return self.fc_mu(x), self.fc_var(x)


def _official_init(m: nn.Module) -> None:
    """The official ``init_weights('normal', 0.02)``: conv weights N(0, 0.02), biases 0.
    As there, spectral-normed convs keep their default weight init (the official loop
    writes to the derived ``weight``, not ``weight_orig``) but get zero biases."""
    if isinstance(m, nn.Conv2d):
        if isinstance(m.weight, nn.Parameter):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class _SynthesisGraph(nn.Module):
    """Deploy view: ``label`` (+ ``instance_edge``) and ``codes`` (N, C, D) -> image."""

    def __init__(self, netG: GroupDNetGenerator) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        cfg = self.netG.cfg
        seg = label_input(inputs[0], cfg.num_classes, inputs[1] if cfg.instance_edge else None)
        return self.netG(seg, inputs[-1])


class _EncoderGraph(nn.Module):
    """Deploy view: ``image`` and ``label`` -> per-class ``mu``, ``logvar`` (N, C, D)."""

    def __init__(self, netE: GroupEncoder, cfg: GroupDNetConfig) -> None:
        super().__init__()
        self.netE = netE
        self.crop = cfg.crop_classes
        self.num_classes = cfg.num_classes

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``label``: class ids (N, H, W) or their one-hot (N, C, H, W)."""
        masks = dense_label(label_input(label, self.num_classes), image.dtype)
        mu, logvar = self.netE(crop_classes(image, masks, self.crop))
        n, c = masks.shape[:2]
        return mu.reshape(n, c, -1), logvar.reshape(n, c, -1)


class GroupDNetModel(SynthesisModel):
    """GroupDNet: per-class codes -> image (``"model"``), image + label -> codes (``"encoder"``)."""

    family = "groupdnet"
    task = "semantic"

    def __init__(self, config: GroupDNetConfig) -> None:
        super().__init__(config)
        self.netG = GroupDNetGenerator(config)
        self.netE = GroupEncoder(config)
        self.apply(_official_init)

    def forward(self, seg: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.netG(seg, codes)

    def encode(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class ``mu, logvar`` of shape (N, C, D)."""
        return _EncoderGraph(self.netE, self.config)(image, label)

    def graphs(self) -> dict[str, GraphSpec]:
        cfg = self.config
        h, w, c = cfg.height, cfg.width, cfg.num_classes
        label = label_spec(c, h, w)
        inputs = [label]
        if cfg.instance_edge:
            inputs.append(edge_spec(h, w))
        inputs.append(TensorSpec("codes", Kind.CODES, (None, c, cfg.code_dim), {"distribution": "normal"}))
        image = TensorSpec("image", Kind.IMAGE, (None, 3, h, w))
        return {
            "model": GraphSpec(_SynthesisGraph(self.netG), tuple(inputs), (image,)),
            "encoder": GraphSpec(
                _EncoderGraph(self.netE, cfg), (image, label),
                (TensorSpec("mu", Kind.MU, (None, c, cfg.code_dim)),
                 TensorSpec("logvar", Kind.LOGVAR, (None, c, cfg.code_dim)))),
        }

    def official_parts(self) -> dict[str, nn.Module]:
        """Official checkpoint file stem -> the submodule it loads into, key for key."""
        return {"net_G": self.netG, "net_E": self.netE}


def _preset(name: str, test_overrides: dict[str, Any], paper_params: float | None = None,
            source: str = "", **cfg: Any) -> None:
    register_model(Preset(name=name, family="groupdnet", model_cls=GroupDNetModel,
                          config=GroupDNetConfig(**cfg), paper_params=paper_params,
                          paper_source=source, test_overrides=test_overrides))


# Table 4 of the paper's appendix and the official scripts (ngf, label_nc, crop size).
# Test overrides keep the group numbers and class counts and shrink widths/resolution
# (Cityscapes' widths must stay multiples of 70 for its 35/20/14/10/4 groups).
_preset("groupdnet-deepfashion",
        {"ngf": 16, "encoder_ndf": 16, "height": 128, "width": 128},
        109.1e6, "GroupDNet paper, DeepFashion #param (encoder + decoder: 12.8M + 96.3M)",
        num_classes=8, height=256, width=256, layout="deepfashion",
        groups=(8, 8, 4, 4, 2, 2, 1), ngf=160, encoder_ndf=256)
_preset("groupdnet-cityscapes",
        {"ngf": 70, "encoder_ndf": 35, "height": 64, "width": 128},
        num_classes=35, height=256, width=512, layout="cityscapes", instance_edge=True,
        groups=(35, 35, 20, 14, 10, 4, 1), ngf=280, encoder_ndf=350, palette="cityscapes")
_preset("groupdnet-ade20k",
        {"ngf": 8, "encoder_ndf": 151, "height": 128, "width": 128},
        num_classes=151, height=256, width=256, layout="ade20k",
        groups=(151, 16, 16, 8, 4, 2, 1, 1), ngf=64, encoder_ndf=604, palette="ade20k")
