"""DP-SIMS generator (Berrada et al., CVPR 2024, "Unlocking Pre-trained Image Backbones
for Semantic Image Synthesis", Sec. 3.2 and Table S2). No official code exists; this
is our reading of the paper.

Three parts:

* **mapping**: ``z`` (64-d) is normalised to the unit sphere in-graph, and a 3-layer MLP
  maps it to ``w``: ``N_TOKENS`` tokens of ``w_dim`` (256) channels.
* **label-map encoder** (``label_stem`` + ``pyramid``): a pyramid of stride-2 blocks of
  width ``pyramid_dim`` (64). A *conv* block is Conv3x3(s2)-BN-GELU-Conv1x1. An *attn*
  block is Conv3x3(s2)-BN-GELU, gated residual cross-attention to ``w`` (gate starts
  at 0), BN-GELU, residual self-attention, GELU-BN-Conv1x1; attention widths are the
  block width // 2 (:mod:`.layers.attention`).
* **image path** (OASIS-style): a 3x3 conv on the label map resized to the lowest
  resolution, six SPADE residual blocks (widths 1024, 1024, 1024, 512, 256, 128, 64,
  x2 upsampling in between), LeakyReLU and ``conv_img``. The generator has no tanh
  (as in the paper); the deploy graph clamps its output to [-1, 1] for the SDK.

Choices where Table S2 leaves room, each one constant below:

* ``BLOCK_TYPES``: the table's [Conv, Conv, Conv, Linear, Linear] (high to low
  resolution) are the pyramid's five stride-2 blocks at H/2..H/32; "Linear" is read
  as the attention block (linear Q/K/V projections), so attention runs at H/16 and
  H/32 (16x16 and 8x8 at 256x256), inside the paper's "64x64 and below".
* ``N_TOKENS``: ``w`` has 16 tokens.
* ``SPADE_CONDITION``: each SPADE block is modulated by the pyramid feature at its
  own resolution only (the full-resolution one is ``label_stem``, a Conv3x3-BN-GELU on
  the one-hot map); set to ``"features+label"`` to also concatenate the resized label map.
* ``ATTN_HEADS``: one attention head; the MLP uses GELU between its layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.oasis.network import OASISModel
from sdk.train.models.layers.attention import CrossAttention2d, SelfAttention2d
from sdk.train.models.layers.label_map import LabelMap, read_label, resize_label
from sdk.train.models.layers.onehot import mark_one_hot_input, mark_spade_label_convs
from sdk.train.models.layers.resblocks import SPADEResnetBlock
from sdk.train.models.registry import Preset, register_model
from sdk.train.models.spec import SynthesisModel

BLOCK_TYPES: tuple[str, ...] = ("conv", "conv", "conv", "attn", "attn")  # high -> low resolution
N_TOKENS = 16
SPADE_CONDITION = "features"  # or "features+label"
ATTN_HEADS = 1
ATTN_DIVIDER = 2


@dataclass(frozen=True)
class DPSIMSConfig:
    num_classes: int  # one-hot label channels, the dontcare label included
    height: int
    width: int
    channels_G: int = 64  # image-path widths 16, 16, 16, 8, 4, 2, 1 x channels_G
    z_dim: int = 64
    w_dim: int = 256
    n_tokens: int = N_TOKENS
    mlp_hidden: int = 256
    pyramid_dim: int = 64
    block_types: tuple[str, ...] = BLOCK_TYPES
    spade_condition: str = SPADE_CONDITION
    attn_heads: int = ATTN_HEADS
    attn_divider: int = ATTN_DIVIDER
    param_free_norm: str = "batch"  # SPADE's norm; convert to SyncBatchNorm for DDP
    spade_hidden: int = 128
    spectral_norm: bool = True  # on the residual blocks' convs, as OASIS
    gate_init: float = 0.0  # cross-attention gates (paper: 0); CI opens them so z matters
    palette: str | None = None


class Mapping(nn.Module):
    """``z`` -> unit sphere -> 3-layer MLP -> ``w`` of shape (N, n_tokens, w_dim)."""

    def __init__(self, cfg: DPSIMSConfig) -> None:
        super().__init__()
        self.n_tokens, self.w_dim = cfg.n_tokens, cfg.w_dim
        self.mlp = nn.Sequential(
            nn.Linear(cfg.z_dim, cfg.mlp_hidden), nn.GELU(),
            nn.Linear(cfg.mlp_hidden, cfg.mlp_hidden), nn.GELU(),
            nn.Linear(cfg.mlp_hidden, cfg.n_tokens * cfg.w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = F.normalize(z, dim=1, eps=1e-8)
        return self.mlp(z).view(-1, self.n_tokens, self.w_dim)


class ConvBlock(nn.Module):
    """Pyramid block: Conv3x3 (stride 2), BN, GELU, Conv1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cout, cout, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.bn(self.conv(x))))


class AttentionBlock(nn.Module):
    """Pyramid block with noise injection: Conv3x3 (s2), BN, GELU, gated cross-attention
    to ``w``, BN, GELU, self-attention, GELU, BN, Conv1x1."""

    def __init__(self, cin: int, cout: int, w_dim: int, divider: int, heads: int,
                 gate_init: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.bn0 = nn.BatchNorm2d(cout)
        self.cross = CrossAttention2d(cout, w_dim, divider, heads, gate_init)
        self.bn1 = nn.BatchNorm2d(cout)
        self.self_attn = SelfAttention2d(cout, divider, heads)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cout, cout, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.cross(F.gelu(self.bn0(self.conv(x))), w)
        x = self.self_attn(F.gelu(self.bn1(x)))
        return self.proj(self.bn2(F.gelu(x)))


class DPSIMSGenerator(nn.Module):
    """``forward(seg, z) -> image`` (unbounded: no tanh, as in the paper)."""

    def __init__(self, cfg: DPSIMSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_down = len(cfg.block_types)
        if cfg.height % 2**n_down or cfg.width % 2**n_down:
            raise ValueError(f"DP-SIMS needs height and width divisible by {2**n_down}; "
                             f"got {cfg.height}x{cfg.width}")
        if cfg.spade_condition not in ("features", "features+label"):
            raise ValueError(f"unknown spade_condition {cfg.spade_condition!r}")
        self.init_h, self.init_w = cfg.height // 2**n_down, cfg.width // 2**n_down
        d = cfg.pyramid_dim
        self.mapping = Mapping(cfg)
        self.label_stem = nn.Sequential(nn.Conv2d(cfg.num_classes, d, 3, padding=1),
                                        nn.BatchNorm2d(d), nn.GELU())
        blocks: list[nn.Module] = []
        for kind in cfg.block_types:
            if kind == "conv":
                blocks.append(ConvBlock(d, d))
            elif kind == "attn":
                blocks.append(AttentionBlock(d, d, cfg.w_dim, cfg.attn_divider, cfg.attn_heads, cfg.gate_init))
            else:
                raise ValueError(f"unknown pyramid block type {kind!r}; use 'conv' or 'attn'")
        self.pyramid = nn.ModuleList(blocks)

        ch = cfg.channels_G
        widths = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, 1 * ch][-(n_down + 2):]
        if len(widths) != n_down + 2:
            raise ValueError("DP-SIMS supports at most 5 pyramid blocks (6 SPADE blocks)")
        cond_nc = d + (cfg.num_classes if cfg.spade_condition == "features+label" else 0)
        self.fc = nn.Conv2d(cfg.num_classes, widths[0], 3, padding=1)
        self.body = nn.ModuleList(
            SPADEResnetBlock(widths[i], widths[i + 1], cond_nc, norm=cfg.param_free_norm,
                             spectral=cfg.spectral_norm, hidden=cfg.spade_hidden)
            for i in range(n_down + 1))
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        mark_one_hot_input(self.label_stem[0], 0, cfg.num_classes)
        mark_one_hot_input(self.fc, 0, cfg.num_classes)
        if cfg.spade_condition == "features+label":  # cond = cat(features, label)
            mark_spade_label_convs(self, d, d + cfg.num_classes)

    def encode_label(self, seg: LabelMap | torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        """Pyramid features from full resolution (index 0) down to H/2**len(pyramid)."""
        w = self.mapping(z)
        feats = [read_label(self.label_stem, seg)]
        for block in self.pyramid:
            feats.append(block(feats[-1], w))
        return feats

    def forward(self, seg: LabelMap | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``seg``: one-hot (N, C, H, W) or a ``LabelMap``; ``z``: (N, z_dim)."""
        feats = self.encode_label(seg, z)
        x = read_label(self.fc, resize_label(seg, (self.init_h, self.init_w)))
        for i, block in enumerate(self.body):
            cond: LabelMap | torch.Tensor = feats[len(feats) - 1 - i]
            if self.cfg.spade_condition == "features+label":
                label = resize_label(seg, cond.shape[-2:])
                cond = label.with_before(cond) if isinstance(label, LabelMap) else torch.cat((cond, label), 1)
            x = block(x, cond)
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv_img(F.leaky_relu(x, 0.2))


class DPSIMSModel(OASISModel):
    """DP-SIMS generator; ``graphs()["model"]``: ``(label, z) -> image``, clamped (no tanh),
    ``z`` on the unit sphere. No official checkpoints exist."""

    family = "dpsims"
    generator = DPSIMSGenerator
    distribution = "sphere"
    clamp = True
    noise_input = "latent"  # one global z: no part of it belongs to a region (see sdk.per_class)
    official_parts = SynthesisModel.official_parts


def _preset(name: str, **cfg: Any) -> None:
    register_model(Preset(
        name=name, family="dpsims", model_cls=DPSIMSModel, config=DPSIMSConfig(**cfg),
        test_overrides={"channels_G": 4, "spade_hidden": 8, "pyramid_dim": 8, "w_dim": 16,
                        "mlp_hidden": 16, "n_tokens": 4,
                        # open gates: a fresh DP-SIMS ignores z by design (gates start at 0),
                        # which would leave the attention branch out of every parity check
                        "gate_init": 1.0}))


_preset("dpsims-ade20k", num_classes=151, height=256, width=256, palette="ade20k")
_preset("dpsims-cityscapes", num_classes=35, height=256, width=512, palette="cityscapes")
_preset("dpsims-coco", num_classes=183, height=256, width=256, palette="coco")
