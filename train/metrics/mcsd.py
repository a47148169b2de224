"""mCSD / mOCD (Zhu et al. 2020, GroupDNet, Sec. 5): semantically multi-modal diversity.

For a label map and class ``c``, images are generated from codes that differ only in
class ``c``'s code. mCSD (mean class-specific diversity, higher is better) averages an
LPIPS-style distance between those images *inside* class ``c``'s region; mOCD (mean
other-classes diversity, lower is better) the same distance *outside* it. Both are
averaged over image pairs, label maps and the classes present.

The distance is LPIPS's: unit-normalise each layer's features along channels, square
the difference, weight channels (LPIPS's learned linear layers, read from a local file
with :func:`load_lpips_linear`, or uniform), average spatially - here within a mask
resized to the layer's resolution - and sum over layers. Any feature extractor
(``image -> list of feature maps``) can be passed; nothing is downloaded.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from sdk.train.metrics import register_metric

Features = Callable[[torch.Tensor], Sequence[torch.Tensor]]
# LPIPS's input scaling layer (images in [-1, 1])
_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def load_lpips_linear(path: str | Path) -> list[torch.Tensor]:
    """Per-layer channel weights (``lin{i}.model.1.weight``, shape (1, C, 1, 1)) from a
    local LPIPS weight file such as ``vgg.pth``."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    keys = sorted((k for k in state if k.startswith("lin") and k.endswith(".weight")),
                  key=lambda k: int(k[3:].split(".")[0]))
    if not keys:
        raise ValueError(f"{path} holds no LPIPS linear weights (lin0.model.1.weight ...)")
    return [state[k].float() for k in keys]


def masked_distance(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, features: Features,
                    lin: Sequence[torch.Tensor] | None = None, scale_input: bool = True) -> torch.Tensor:
    """LPIPS-style distance of ``x`` and ``y`` (N, 3, H, W) averaged within ``mask``
    (N, 1, H, W) in [0, 1]. Returns (N,); 0 where the mask is empty."""
    if scale_input:
        x, y = (x - _SHIFT.to(x)) / _SCALE.to(x), (y - _SHIFT.to(y)) / _SCALE.to(y)
    total = x.new_zeros(x.shape[0])
    for i, (fx, fy) in enumerate(zip(features(x), features(y), strict=True)):
        d = (F.normalize(fx, dim=1, eps=1e-10) - F.normalize(fy, dim=1, eps=1e-10)) ** 2
        d = (d * lin[i].to(d)).sum(1) if lin is not None else d.mean(1)
        m = F.interpolate(mask.float(), size=d.shape[-2:], mode="area")[:, 0]
        total = total + (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-8)
    return total


@register_metric("mcsd")
@torch.no_grad()
def mcsd_mocd(generate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], label: torch.Tensor,
              code_dim: int, features: Features, *, samples: int = 3,
              classes: Sequence[int] | None = None, lin: Sequence[torch.Tensor] | None = None,
              scale_input: bool = True, seed: int = 0) -> dict[str, float]:
    """mCSD and mOCD of ``generate(label, codes) -> image`` on ``label`` (N, C, H, W).

    For each class (``classes``, default every class present in ``label``) ``samples``
    images are generated per label map from shared codes (N, C, ``code_dim``) whose
    class-``c`` code alone is redrawn; every pair is compared inside the class mask
    (mCSD) and outside it (mOCD), only over label maps that contain the class.
    """
    g = torch.Generator().manual_seed(seed)
    n, c = label.shape[:2]
    base = torch.randn(n, c, code_dim, generator=g)
    if classes is None:
        classes = [k for k in range(c) if label[:, k].any()]
    csd, ocd = [], []
    for k in classes:
        has = label[:, k].flatten(1).any(1)
        if not has.any():
            continue
        images = []
        for _ in range(samples):
            codes = base.clone()
            codes[:, k] = torch.randn(n, code_dim, generator=g)
            images.append(generate(label, codes))
        inside = label[:, k:k + 1]
        pairs = list(combinations(images, 2))
        d_in = torch.stack([masked_distance(a, b, inside, features, lin, scale_input) for a, b in pairs])
        d_out = torch.stack([masked_distance(a, b, 1 - inside, features, lin, scale_input) for a, b in pairs])
        csd.append(d_in[:, has].mean())
        ocd.append(d_out[:, has].mean())
    if not csd:
        raise ValueError("no class to measure: the label maps contain none of the requested classes")
    return {"mCSD": float(torch.stack(csd).mean()), "mOCD": float(torch.stack(ocd).mean())}
