"""OASIS (Schönfeld et al. 2021): the N+1-class segmentation loss of the discriminator,
class-balanced per pixel; DP-SIMS adds a focal term (``gamma``) on top (``dpsims.losses``).

Labels are one-hot (N, C, H, W) with channel 0 the dontcare label when ``dontcare=True``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_weight_map(label: torch.Tensor, dontcare: bool = True) -> torch.Tensor:
    """OASIS' per-pixel class-balancing weights, (N, H, W).

    A pixel of class c weighs ``N*H*W / (n_present * count_c)`` with ``count_c`` the
    number of pixels of c in the batch and ``n_present`` the number of classes present
    (dontcare excluded and weighted 0): every present class gets the same total weight.
    """
    counts = label.sum(dim=(0, 2, 3))
    if dontcare:
        counts = counts.clone()
        counts[0] = 0
    n_present = (counts > 0).sum().clamp(min=1)
    pixels = label.shape[0] * label.shape[2] * label.shape[3]
    coeff = torch.where(counts > 0, pixels / (n_present * counts.clamp(min=1e-12)),
                        torch.zeros_like(counts))
    return coeff[label.argmax(1)]


def n1_target(label: torch.Tensor, for_real: bool) -> torch.Tensor:
    """(N, H, W) int targets of the (C + 1)-class loss: ``class + 1`` if real, 0 if fake."""
    ids = label.argmax(1)
    return ids + 1 if for_real else torch.zeros_like(ids)


def focal_loss(logits: torch.Tensor, label: torch.Tensor, for_real: bool, gamma: float = 2.0,
               smoothing: float = 0.0, class_weighting: bool = True,
               dontcare: bool = True) -> torch.Tensor:
    """Class-weighted pixel-wise focal loss on (C + 1)-class logits (N, C + 1, H, W).

    ``smoothing`` (eps) moves ``eps`` of a *real* target's mass to the fake class;
    pass it for the discriminator's real images only (one-sided label smoothing).
    ``gamma=0`` and ``smoothing=0`` give OASIS' weighted cross-entropy.
    """
    logp = F.log_softmax(logits, 1)
    focal = (1 - logp.exp()).pow(gamma) * logp
    target = n1_target(label, for_real)
    per_pixel = -focal.gather(1, target.unsqueeze(1)).squeeze(1)
    if for_real and smoothing:
        per_pixel = (1 - smoothing) * per_pixel - smoothing * focal[:, 0]
    if for_real and class_weighting:
        per_pixel = per_pixel * class_weight_map(label, dontcare)
    return per_pixel.mean()
