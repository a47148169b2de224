"""Sliced Wasserstein distance between Laplacian-pyramid patch statistics, as the
Progressive GAN paper (Karras et al., ICLR 2018, Sec. 5 and App. D) defines it.

Per pyramid level (full resolution down to 16x16): 128 random 7x7 neighbourhoods per
image form 147-d descriptors; each set of descriptors is normalised per colour channel
(its own mean and standard deviation); the distance is the mean absolute difference of
sorted 1-D projections on 512 random unit directions (4 repeats of 128). Values are
reported multiplied by 1e3, as the paper's tables.
"""
from __future__ import annotations

import numpy as np

from sdk.train.metrics import register_metric

_KERNEL_1D = np.float32([1, 4, 6, 4, 1]) / 16.0  # its outer product is the 5x5 Gaussian of cv2.pyrDown


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 5x5 Gaussian over the last two axes, mirrored borders (cv2/scipy 'mirror')."""
    pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(2, 2), (2, 2)], mode="reflect")
    h, w = x.shape[-2:]
    rows = sum(_KERNEL_1D[k] * pad[..., k:k + h, :] for k in range(5))
    return sum(_KERNEL_1D[k] * rows[..., :, k:k + w] for k in range(5)).astype(np.float32)


def pyr_down(x: np.ndarray) -> np.ndarray:
    return _blur(x)[..., ::2, ::2]


def pyr_up(x: np.ndarray) -> np.ndarray:
    up = np.zeros(x.shape[:-2] + (x.shape[-2] * 2, x.shape[-1] * 2), np.float32)
    up[..., ::2, ::2] = x
    return _blur(up) * 4.0  # the zeros dilute the kernel by 4


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Band-pass levels, full resolution first; the last level is the low-pass residual."""
    gauss = [np.asarray(images, np.float32)]
    for _ in range(1, num_levels):
        gauss.append(pyr_down(gauss[-1]))
    return [g - pyr_up(gauss[i + 1]) for i, g in enumerate(gauss[:-1])] + [gauss[-1]]


def reconstruct_laplacian_pyramid(levels: list[np.ndarray]) -> np.ndarray:
    out = levels[-1]
    for band in levels[-2::-1]:
        out = pyr_up(out) + band
    return out


def patch_descriptors(level: np.ndarray, nhood_size: int, per_image: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``per_image`` random ``nhood_size``-square patches of every image: (N*per_image, C, k, k)."""
    n, c, h, w = level.shape
    r = nhood_size // 2
    ys = rng.integers(r, h - r, size=(n, per_image))
    xs = rng.integers(r, w - r, size=(n, per_image))
    off = np.arange(-r, r + 1)
    img = np.arange(n)[:, None, None, None, None]
    ch = np.arange(c)[None, None, :, None, None]
    yy = (ys[:, :, None, None, None] + off[:, None])
    xx = (xs[:, :, None, None, None] + off[None, :])
    return level[img, ch, yy, xx].reshape(n * per_image, c, nhood_size, nhood_size)


def normalize_descriptors(desc: np.ndarray) -> np.ndarray:
    """Per-channel standardisation over all patches and pixels, then flatten."""
    desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
    std = desc.std(axis=(0, 2, 3), keepdims=True)
    desc = desc / np.where(std > 0, std, 1.0)  # a flat channel stays zero instead of NaN
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, dir_repeats: int = 4, dirs_per_repeat: int = 128,
                       rng: np.random.Generator | None = None) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the
    projected point sets ``a`` and ``b`` (same shape, (points, dims))."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (points, dims) arrays of one shape, got {a.shape} and {b.shape}")
    rng = rng or np.random.default_rng(0)
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat)).astype(np.float32)
        dirs /= np.sqrt((dirs**2).sum(axis=0, keepdims=True))
        pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
        results.append(float(np.abs(pa - pb).mean()))
    return float(np.mean(results))


def _to_uint8_range(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32)
    return ((images.astype(np.float32) + 1.0) * 127.5).clip(0, 255)  # the SDK's [-1, 1] images


@register_metric("swd")
def sliced_wasserstein_distance(real: np.ndarray, fake: np.ndarray, *, nhood_size: int = 7,
                                nhoods_per_image: int = 128, dir_repeats: int = 4,
                                dirs_per_repeat: int = 128, min_resolution: int = 16,
                                seed: int = 0) -> dict[str, float]:
    """SWD x 1e3 per pyramid level and averaged (keys ``SWDx1e3_<res>``, ``SWDx1e3_avg``).

    ``real`` / ``fake``: (N, 3, H, W) uint8 in [0, 255] or float in [-1, 1]; the same N
    (the paper uses 16384 images). Levels run from H down to ``min_resolution``.
    """
    real, fake = _to_uint8_range(real), _to_uint8_range(fake)
    if real.shape != fake.shape or real.ndim != 4:
        raise ValueError(f"real and fake must be (N, C, H, W) of one shape, got {real.shape}, {fake.shape}")
    resolutions = []
    res = real.shape[2]
    while res >= min_resolution:
        resolutions.append(res)
        res //= 2
    if not resolutions:
        raise ValueError(f"images of height {real.shape[2]} are below min_resolution={min_resolution}")
    rng = np.random.default_rng(seed)
    levels_r = laplacian_pyramid(real, len(resolutions))
    levels_f = laplacian_pyramid(fake, len(resolutions))
    out: dict[str, float] = {}
    for res, lr, lf in zip(resolutions, levels_r, levels_f):
        dr = normalize_descriptors(patch_descriptors(lr, nhood_size, nhoods_per_image, rng))
        df = normalize_descriptors(patch_descriptors(lf, nhood_size, nhoods_per_image, rng))
        out[f"SWDx1e3_{res}"] = 1e3 * sliced_wasserstein(dr, df, dir_repeats, dirs_per_repeat, rng)
    out["SWDx1e3_avg"] = float(np.mean(list(out.values())))
    return out
