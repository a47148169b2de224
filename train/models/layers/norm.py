"""Normalisation layers: parameter-free norms, SPADE, and the spectral-norm wrapper.

Attribute names follow NVlabs/SPADE (``param_free_norm``, ``mlp_shared``,
``mlp_gamma``, ``mlp_beta``) so official checkpoints load key for key.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from sdk.train.models.layers.label_map import LabelMap, read_label, resize_label


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation without affine parameters: ``instance``, ``batch`` or ``syncbatch``.

    ``syncbatch`` is a SyncBatchNorm (it has BatchNorm's state-dict keys, so
    official SyncBN checkpoints load); export turns it back into BatchNorm.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "syncbatch":
        return nn.SyncBatchNorm(channels, affine=False)
    raise ValueError(f"unknown parameter-free norm {kind!r}; use instance, batch or syncbatch")


def parse_spade_config(text: str) -> tuple[str, int]:
    """``'spadesyncbatch3x3'`` -> ``('syncbatch', 3)``, as SPADE's ``norm_G`` strings read."""
    m = re.fullmatch(r"spade(\D+)(\d)x\d", text)
    if not m:
        raise ValueError(f"cannot read SPADE norm config {text!r}; expected e.g. 'spadesyncbatch3x3'")
    return m.group(1), int(m.group(2))


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019, Eq. 1).

    ``out = norm(x) * (1 + gamma(seg)) + beta(seg)`` where gamma and beta come from a
    shared conv (``hidden`` channels, ReLU) on the label map resized to ``x``. ``seg`` is
    the float label tensor (training) or a :class:`~.label_map.LabelMap` (deployment).
    ``norm_attr`` names the parameter-free norm's attribute (its state-dict prefix):
    NVlabs/SPADE calls it ``param_free_norm``, boschresearch/OASIS ``first_norm``.
    """

    def __init__(self, norm_nc: int, label_nc: int, norm: str = "syncbatch",
                 kernel_size: int = 3, hidden: int = 128,
                 norm_attr: str = "param_free_norm") -> None:
        super().__init__()
        self._norm_attr = norm_attr
        setattr(self, norm_attr, param_free_norm(norm, norm_nc))
        pw = kernel_size // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, seg: LabelMap | torch.Tensor) -> torch.Tensor:
        normalized = getattr(self, self._norm_attr)(x)
        actv = read_label(self.mlp_shared, resize_label(seg, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap with the classic ``spectral_norm`` hook (keys ``weight_orig/_u/_v`` as in
    the official checkpoints). Export folds it away (``sdk.train.deploy.fold``)."""
    return nn.utils.spectral_norm(module) if enabled else module


def nonspade_norm_layer(layer: nn.Conv2d, norm_type: str) -> nn.Module:
    """A conv followed by its normalisation, from strings like ``'spectralinstance'``.

    Mirrors the official ``get_nonspade_norm_layer``: the conv's bias is dropped when a
    normalisation follows (it would be cancelled), and the pair becomes
    ``Sequential(conv, norm)`` so keys read ``layer1.0.weight_orig``.
    """
    spectral = norm_type.startswith("spectral")
    sub = norm_type[len("spectral"):] if spectral else norm_type
    layer = maybe_spectral(layer, spectral)
    if sub in ("none", ""):
        return layer
    if layer.bias is not None:
        del layer.bias
        layer.register_parameter("bias", None)
    channels = layer.out_channels
    if sub == "instance":
        norm: nn.Module = nn.InstanceNorm2d(channels, affine=False)
    elif sub == "batch":
        norm = nn.BatchNorm2d(channels, affine=True)
    elif sub == "syncbatch":
        norm = nn.SyncBatchNorm(channels, affine=True)
    else:
        raise ValueError(f"unknown norm type {norm_type!r}")
    return nn.Sequential(layer, norm)
