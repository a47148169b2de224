"""Full-reference image metrics: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003).

Inputs are numpy arrays or torch tensors of shape (N, C, H, W) or (C, H, W). The data
range defaults to 255 for uint8 inputs and to 2 for float inputs (the SDK's [-1, 1]
images); pass ``data_range`` otherwise. Each function returns the batch mean as a float,
or one value per image with ``reduction="none"``.

SSIM uses an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03 and no padding
("valid"), averaged over channels. MS-SSIM uses five scales with the published weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333) and 2x2 average pooling between scales (odd sides
round up); the
contrast-structure terms are clamped at zero, so images need a side of at least
``(11 - 1) * 2**4 + 1 = 161`` pixels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sdk.train.metrics import register_metric

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_tensor(x: Any) -> tuple[torch.Tensor, float]:
    """float64 (N, C, H, W) tensor and the default data range of ``x``'s dtype."""
    uint8 = (isinstance(x, np.ndarray) and x.dtype == np.uint8) or \
            (isinstance(x, torch.Tensor) and x.dtype == torch.uint8)
    t = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x).detach().cpu().double()
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) images, got shape {tuple(t.shape)}")
    return t, 255.0 if uint8 else 2.0


def _pair(a: Any, b: Any, data_range: float | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    ta, default = _as_tensor(a)
    tb, _ = _as_tensor(b)
    if ta.shape != tb.shape:
        raise ValueError(f"images differ in shape: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    return ta, tb, float(data_range if data_range is not None else default)


def _reduce(values: torch.Tensor, reduction: str) -> float | np.ndarray:
    if reduction == "mean":
        return float(values.mean())
    if reduction == "none":
        return values.numpy()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


@register_metric("psnr")
def psnr(a: Any, b: Any, *, data_range: float | None = None, reduction: str = "mean") -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)`` per image (inf if equal)."""
    ta, tb, rng = _pair(a, b, data_range)
    mse = (ta - tb).pow(2).flatten(1).mean(1)
    return _reduce(10 * torch.log10(rng**2 / mse), reduction)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable valid convolution of every channel with the 1-D window ``g``."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _ssim_terms(a: torch.Tensor, b: torch.Tensor, rng: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (SSIM, contrast-structure) means over pixels and channels."""
    g = _gaussian_window()
    if min(a.shape[-2:]) < g.numel():
        raise ValueError(f"SSIM needs images of at least {g.numel()}x{g.numel()}, got {tuple(a.shape[-2:])}")
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = _filter(a * a, g) - mu_a**2
    var_b = _filter(b * b, g) - mu_b**2
    cov = _filter(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


@register_metric("ssim")
def ssim(a: Any, b: Any, *, data_range: float | None = None, reduction: str = "mean") -> float | np.ndarray:
    """Structural similarity (Gaussian window 11, sigma 1.5), 1 for identical images."""
    ta, tb, rng = _pair(a, b, data_range)
    return _reduce(_ssim_terms(ta, tb, rng)[0], reduction)


@register_metric("ms_ssim")
def ms_ssim(a: Any, b: Any, *, data_range: float | None = None, reduction: str = "mean",
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float | np.ndarray:
    """Multi-scale SSIM: ``prod_j cs_j^w_j`` over the finer scales times ``ssim^w`` at the coarsest."""
    ta, tb, rng = _pair(a, b, data_range)
    need = (11 - 1) * 2 ** (len(weights) - 1) + 1  # the coarsest scale must hold the window
    if min(ta.shape[-2:]) < need:
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs a side of at least {need} px, "
                         f"got {tuple(ta.shape[-2:])}")
    w = torch.tensor(weights, dtype=torch.float64)
    terms = []
    for j in range(len(weights)):
        s, cs = _ssim_terms(ta, tb, rng)
        if j == len(weights) - 1:
            terms.append(s.clamp_min(0))
        else:
            terms.append(cs.clamp_min(0))
            # odd sides round up (the last row / column is averaged on its own)
            ta, tb = F.avg_pool2d(ta, 2, ceil_mode=True), F.avg_pool2d(tb, 2, ceil_mode=True)
    stacked = torch.stack(terms, 1)  # (N, scales)
    return _reduce(torch.prod(stacked ** w, dim=1), reduction)
