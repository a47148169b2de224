"""DP-SIMS discriminator (Berrada et al., CVPR 2024, Sec. 3.1, Table S3).

A UNet whose encoder is a frozen, pre-trained ConvNeXt. Its four stage outputs
(strides 4, 8, 16, 32) are conditioned by a parameter-free BatchNorm and tanh, then a
trainable decoder of residual blocks (width 128) upsamples them to full resolution,
merging a trainable full-resolution image path (strides 1 and 2, which ConvNeXt's
stride-4 stem never sees), and predicts (C + 1) logits per pixel: class 0 is "fake",
class c + 1 is "real, of label c" (OASIS' N+1 formulation).

:class:`ConvNeXt` is written here with timm's ``convnext_*`` parameter names
(``stem.0``, ``stages.i.downsample.1``, ``stages.i.blocks.j.conv_dw`` / ``norm`` /
``mlp.fc1`` / ``mlp.fc2`` / ``gamma``), so a timm ConvNeXt weight file loads from a
local path with :meth:`ConvNeXt.load_timm` (the classifier head is dropped). Nothing
is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.families.oasis.discriminator import ResBlockD
from sdk.train.models.layers.norm import maybe_spectral
from sdk.train.models.official import check_and_load, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv, LayerNorm, MLP (x4), layer scale ``gamma``, residual."""

    def __init__(self, dim: int, ls_init: float = 1e-6) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.mlp(self.norm(y)) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtStage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, stride=2))
                           if downsample else nn.Identity())
        self.blocks = nn.Sequential(*(ConvNeXtBlock(cout) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXt(nn.Module):
    """ConvNeXt feature extractor (no head): ``forward(x)`` -> the 4 stage outputs.

    ``x`` is an ImageNet-normalised RGB batch. ConvNeXt-L is ``depths=(3, 3, 27, 3)``,
    ``dims=(192, 384, 768, 1536)``.
    """

    def __init__(self, depths: tuple[int, ...] = (3, 3, 27, 3),
                 dims: tuple[int, ...] = (192, 384, 768, 1536)) -> None:
        super().__init__()
        self.dims = tuple(dims)
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        self.stages = nn.Sequential(*(
            ConvNeXtStage(dims[max(i - 1, 0)], dims[i], depths[i], downsample=i > 0)
            for i in range(len(dims))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def load_timm(self, path: str | Path) -> None:
        """Load a timm ``convnext_*`` state_dict file (``.pth`` / ``.safetensors``) strictly,
        ignoring its classifier (``head.*``, ``norm_pre.*``)."""
        state = {k: v for k, v in read_state_dict(path).items()
                 if not k.startswith(("head.", "norm_pre."))}
        check_and_load(self, state, f"timm ConvNeXt weights {path}")


@dataclass(frozen=True)
class DPSIMSDiscriminatorConfig:
    num_classes: int  # label channels C; the output has C + 1
    depths: tuple[int, ...] = (3, 3, 27, 3)  # ConvNeXt-L
    dims: tuple[int, ...] = (192, 384, 768, 1536)
    width: int = 128  # the trainable decoder's and full-resolution path's width
    spectral: bool = True


class DPSIMSDiscriminator(nn.Module):
    """``forward(image in [-1, 1]) -> (N, C + 1, H, W)`` logits; H, W divisible by 32."""

    def __init__(self, cfg: DPSIMSDiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, sn = cfg.width, cfg.spectral
        self.backbone = ConvNeXt(cfg.depths, cfg.dims)
        self.backbone.requires_grad_(False)
        # Feature conditioning (Table S3): per-channel standardisation, then tanh.
        self.feature_norm = nn.ModuleList(nn.BatchNorm2d(d, affine=False) for d in cfg.dims)
        self.lateral = nn.ModuleList(maybe_spectral(nn.Conv2d(d, w, 1), sn) for d in cfg.dims)
        self.full_res = nn.ModuleList([ResBlockD(3, w, sn), ResBlockD(w, w, sn, down=True)])
        # From stride 32 up: 3 merges with backbone features (16, 8, 4), 2 with the image path.
        self.up_blocks = nn.ModuleList(ResBlockD(2 * w, w, sn) for _ in range(len(cfg.dims) - 1 + 2))
        self.out = nn.Conv2d(w, cfg.num_classes + 1, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "DPSIMSDiscriminator":
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout / stat updates, whatever the mode
        return self

    def conditioned_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's 4 features after BN (no affine) + tanh, strides 4..32."""
        x = ((image + 1) / 2 - self.mean) / self.std
        return [torch.tanh(bn(f)) for bn, f in zip(self.feature_norm, self.backbone(x))]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []  # the trainable image path at strides 1 and 2 (full_res[1] pools at its end)
        h = image
        for block in self.full_res:
            h = block(h)
            skips.append(h)
        feats = [lat(f) for lat, f in zip(self.lateral, self.conditioned_features(image))]
        x = feats[-1]
        merges = feats[-2::-1] + skips[::-1]  # strides 16, 8, 4, then 2, 1
        for block, skip in zip(self.up_blocks, merges):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat((x, skip), 1))
        return self.out(x)
