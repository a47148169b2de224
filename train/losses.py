"""GAN training losses as the SPADE-family code defines them.

* :class:`GANLoss`: hinge (default), least squares (``"ls"``), non-saturating
  cross-entropy (``"original"``) or Wasserstein (``"w"``), over one prediction or the
  multi-scale discriminator's list of per-scale outputs.
* :func:`feature_matching_loss`: L1 between the discriminator's intermediate features
  of fake and real images.
* :class:`VGGLoss`: perceptual L1 on VGG19 relu1_1..relu5_1, weights 1/32..1.
  :class:`VGG19Features` keeps torchvision's ``vgg19().features`` parameter names, so
  its weight file loads from a local path (no torchvision import, no download).
* :func:`kld_loss`: KL divergence of N(mu, exp(logvar)) from N(0, 1), summed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

Pred = Union[torch.Tensor, Sequence[Union[torch.Tensor, Sequence[torch.Tensor]]]]
GAN_MODES = ("hinge", "ls", "original", "w")


class GANLoss(nn.Module):
    """``loss(pred, target_is_real, for_discriminator)``.

    ``pred`` is a tensor or a list with one entry per discriminator scale (each a tensor
    or a list of features whose last entry is the prediction); per-scale losses are
    averaged over the scales.
    """

    def __init__(self, mode: str = "hinge", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; use one of {GAN_MODES}")
        self.mode, self.real_label, self.fake_label = mode, real_label, fake_label

    def single(self, pred: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        if self.mode in ("original", "ls"):
            target = torch.full_like(pred, self.real_label if target_is_real else self.fake_label)
            if self.mode == "original":
                return F.binary_cross_entropy_with_logits(pred, target)
            return F.mse_loss(pred, target)
        if self.mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("the generator's hinge loss always targets 'real'")
                return -pred.mean()
            margin = pred - 1 if target_is_real else -pred - 1
            return -torch.clamp(margin, max=0).mean()
        return -pred.mean() if target_is_real else pred.mean()

    def forward(self, pred: Pred, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(pred, torch.Tensor):
            return self.single(pred, target_is_real, for_discriminator)
        losses = [self.single(p if isinstance(p, torch.Tensor) else p[-1], target_is_real,
                              for_discriminator) for p in pred]
        return torch.stack(losses).mean()


def feature_matching_loss(fake: Sequence[Sequence[torch.Tensor]], real: Sequence[Sequence[torch.Tensor]],
                          weight: float = 10.0) -> torch.Tensor:
    """Sum over scales and intermediate features (the final prediction excluded) of
    ``L1(fake, real.detach()) * weight / num_scales``."""
    total = fake[0][0].new_zeros(())
    for f_scale, r_scale in zip(fake, real, strict=True):
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach()) * weight / len(fake)
    return total


def kld_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))`` (summed, as the official code)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


# torchvision's vgg19 "E" configuration; "M" is a 2x2 max-pool
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG_LAYERS = (2, 7, 12, 21, 30)  # ends of the relu1_1 .. relu5_1 slices of ``features``
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class VGG19Features(nn.Module):
    """VGG19's convolutional part with torchvision's names (``features.0.weight``...).

    ``forward`` returns relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1. Weights are
    random until :meth:`load` reads a torchvision ``vgg19`` state_dict from a local file.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)

    @classmethod
    def from_file(cls, path: str | Path) -> "VGG19Features":
        """Build and load torchvision vgg19 weights from ``path`` (``.pth`` or ``.safetensors``;
        ``classifier.*`` keys are ignored). Parameters are frozen."""
        from sdk.train.models.official import check_and_load, read_state_dict

        net = cls()
        state = {k: v for k, v in read_state_dict(path).items() if k.startswith("features.")}
        check_and_load(net, state, f"VGG19 weights {path}")
        net.requires_grad_(False)
        return net.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in VGG_LAYERS:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs


class VGGLoss(nn.Module):
    """``sum_i w_i * L1(vgg_i(x), vgg_i(y).detach())`` with w = 1/32, 1/16, 1/8, 1/4, 1.

    ``vgg`` is any callable returning five feature maps (normally :class:`VGG19Features`).
    Inputs are passed as given (the official code feeds [-1, 1] images unnormalised).
    """

    def __init__(self, vgg: nn.Module, weights: Sequence[float] = VGG_WEIGHTS) -> None:
        super().__init__()
        self.vgg, self.weights = vgg, tuple(weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.vgg(x), self.vgg(y)
        return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(self.weights, fx, fy, strict=True))
