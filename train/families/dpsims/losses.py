"""DP-SIMS training losses (Berrada et al., CVPR 2024, Sec. 3.3): focal, contrastive and
diversity losses, and the class-balanced sampling weights the trainer samples with; the
class weighting of the focal loss is OASIS' (``oasis.losses``).

The discriminator predicts (C + 1) logits per pixel: index 0 "fake", index ``c + 1``
"real pixel of class c" (OASIS, Schönfeld et al. 2021). Label maps are one-hot
(N, C, H, W) with channel 0 the dontcare label when ``dontcare=True``.

Interpretations (the paper gives the losses, not code):

* focal loss: ``-sum_k q_k (1 - p_k)^gamma log p_k`` over the C + 1 classes, with the
  target distribution ``q``; real targets are smoothed one-sidedly (``1 - eps`` on the
  pixel's class, ``eps`` on "fake"), fake targets stay hard. Real-target pixels are
  weighted by OASIS' class weights, fake ones are not (as OASIS).
* contrastive loss: PatchNCE between the generated and the real image's VGG19
  features at strides 4, 8, 16: a generated patch's positive is the real patch at the
  same place, its negatives the real patches at ``num_negatives`` other sampled places.
* diversity loss: mode seeking, ``1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps)``.
* class-balanced sampling: repeat-factor weights (Gupta et al., LVIS 2019),
  ``w_i = max over the classes c in image i of max(1, sqrt(t / f_c))`` where ``f_c``
  is the fraction of images containing c.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from sdk.train.families.oasis.losses import focal_loss


def discriminator_loss(out_real: torch.Tensor, out_fake: torch.Tensor, label: torch.Tensor,
                       gamma: float = 2.0, smoothing: float = 0.1, dontcare: bool = True) -> torch.Tensor:
    """D's adversarial loss: real pixels to their (smoothed) class, fake ones to "fake"."""
    return (focal_loss(out_real, label, True, gamma, smoothing, dontcare=dontcare)
            + focal_loss(out_fake, label, False, gamma, dontcare=dontcare))


def generator_adv_loss(out_fake: torch.Tensor, label: torch.Tensor, gamma: float = 2.0,
                       dontcare: bool = True) -> torch.Tensor:
    """G's adversarial loss: generated pixels classified as their real class."""
    return focal_loss(out_fake, label, True, gamma, 0.0, dontcare=dontcare)


def patch_nce(feat_q: torch.Tensor, feat_k: torch.Tensor, num_negatives: int = 128,
              tau: float = 0.3, generator: torch.Generator | None = None) -> torch.Tensor:
    """InfoNCE between patches of two (N, C, H, W) maps at the same positions.

    ``num_negatives + 1`` positions are sampled per image (all if fewer exist); each
    query ``feat_q[p]`` is scored against ``feat_k`` at every sampled position with
    cosine similarity / tau, the same position being the positive.
    """
    n, c, h, w = feat_q.shape
    q = F.normalize(feat_q.flatten(2), dim=1)  # (N, C, HW)
    k = F.normalize(feat_k.flatten(2), dim=1)
    m = min(num_negatives + 1, h * w)
    idx = torch.randperm(h * w, generator=generator)[:m].to(feat_q.device)
    q, k = q[:, :, idx], k[:, :, idx]  # (N, C, m)
    logits = torch.bmm(q.transpose(1, 2), k) / tau  # (N, m, m): query x key
    target = torch.arange(m, device=feat_q.device).expand(n, m)
    return F.cross_entropy(logits.reshape(n * m, m), target.reshape(-1))


def contrastive_loss(vgg: Callable[[torch.Tensor], Sequence[torch.Tensor] | dict],
                     fake: torch.Tensor, real: torch.Tensor, scales: Sequence[int] = (4, 8, 16),
                     num_negatives: int = 128, tau: float = 0.3,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Patch-wise contrastive loss on VGG19 features of the generated vs the real image.

    ``vgg(x)`` returns a sequence (or dict) of feature maps; those whose stride
    (input height / map height) is in ``scales`` are used, averaged.
    """
    def by_stride(x: torch.Tensor) -> dict[int, torch.Tensor]:
        out = vgg(x)
        maps = out.values() if isinstance(out, dict) else out
        return {x.shape[-2] // f.shape[-2]: f for f in maps}

    f_fake, f_real = by_stride(fake), by_stride(real)
    missing = [s for s in scales if s not in f_fake]
    if missing:
        raise ValueError(f"the feature extractor gives strides {sorted(f_fake)}, not {missing}")
    losses = [patch_nce(f_fake[s], f_real[s].detach(), num_negatives, tau, generator) for s in scales]
    return torch.stack(losses).mean()


def diversity_loss(fake1: torch.Tensor, fake2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                   eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking diversity loss: small when two noises give outputs that differ
    in proportion to how much the noises differ (inputs: two generations of one label)."""
    ratio = (fake1 - fake2).abs().mean() / (z1 - z2).abs().mean()
    return 1.0 / (ratio + eps)


def class_balanced_weights(presence: torch.Tensor, threshold: float = 0.1,
                           ignore: Sequence[int] = (0,)) -> torch.Tensor:
    """Per-image sampling weights from class frequencies (repeat-factor sampling).

    ``presence`` is (num_images, C): pixel counts or booleans of each class in each
    image. ``f_c`` = fraction of images containing c; an image weighs
    ``max(1, max_c sqrt(threshold / f_c))`` over its classes (``ignore``: dontcare).
    """
    present = presence > 0
    if ignore:
        present = present.clone()
        present[:, list(ignore)] = False
    freq = present.float().mean(0)
    factor = torch.sqrt(threshold / freq.clamp(min=1e-12)).clamp(min=1.0)
    per_image = torch.where(present, factor.expand_as(present), torch.ones_like(factor))
    return per_image.max(1).values
