"""PSNR, SSIM, MS-SSIM and the Progressive GAN sliced Wasserstein distance on known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdk.train.metrics import get_metric, list_metrics
from sdk.train.metrics.image_quality import ms_ssim, psnr, ssim
from sdk.train.metrics.swd import (
    laplacian_pyramid,
    patch_descriptors,
    pyr_down,
    pyr_up,
    reconstruct_laplacian_pyramid,
    sliced_wasserstein,
    sliced_wasserstein_distance,
)


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def test_metrics_are_registered() -> None:
    assert {"psnr", "ssim", "ms_ssim", "swd"} <= set(list_metrics())
    assert get_metric("psnr") is psnr


def test_psnr_of_a_constant_offset() -> None:
    a = _noise((2, 3, 8, 8))
    assert psnr(a, a + 5.0, data_range=255) == pytest.approx(20 * math.log10(255 / 5))
    assert psnr(a, a) == math.inf
    # float images default to the SDK's [-1, 1] range: an offset of 0.1 is 20 log10(2 / 0.1)
    t = torch.rand(1, 3, 4, 4) * 1.8 - 0.9
    assert psnr(t, t + 0.1) == pytest.approx(20 * math.log10(20), rel=1e-6)
    # uint8 defaults to 255, one value per image with reduction="none"
    u = np.zeros((2, 1, 4, 4), np.uint8)
    v = u.copy()
    v[1] += 10
    v[0] += 1
    np.testing.assert_allclose(psnr(u, v, reduction="none"), [20 * math.log10(255), 20 * math.log10(25.5)])


def test_ssim_identical_and_constant_images() -> None:
    a = _noise((1, 3, 32, 32))
    assert ssim(a, a, data_range=255) == pytest.approx(1.0)
    # constant images m and m + d: zero variance, so SSIM is the luminance term alone
    m, d, rng = 100.0, 30.0, 255.0
    c1 = (0.01 * rng) ** 2
    expected = (2 * m * (m + d) + c1) / (m**2 + (m + d) ** 2 + c1)
    x = np.full((1, 1, 16, 16), m, np.float32)
    assert ssim(x, x + d, data_range=rng) == pytest.approx(expected, rel=1e-9)


def test_ssim_orders_distortions_and_sees_inversion() -> None:
    a = _noise((1, 1, 48, 48))
    rng = np.random.default_rng(1)
    mild = a + rng.normal(0, 5, a.shape)
    strong = a + rng.normal(0, 40, a.shape)
    s_mild, s_strong = ssim(a, mild, data_range=255), ssim(a, strong, data_range=255)
    assert 1 > s_mild > s_strong
    assert ssim(a, 255 - a, data_range=255) < 0  # anti-correlated structure


def test_ms_ssim_known_answers() -> None:
    a = _noise((1, 1, 161, 161))
    assert ms_ssim(a, a, data_range=255) == pytest.approx(1.0)
    # constant images: every contrast-structure term is 1, the coarsest SSIM is luminance only
    m, d = 100.0, 30.0
    c1 = (0.01 * 255) ** 2
    lum = (2 * m * (m + d) + c1) / (m**2 + (m + d) ** 2 + c1)
    x = np.full((1, 1, 161, 161), m, np.float32)
    assert ms_ssim(x, x + d, data_range=255) == pytest.approx(lum**0.1333, rel=1e-9)
    rng = np.random.default_rng(2)
    assert 1 > ms_ssim(a, a + rng.normal(0, 10, a.shape), data_range=255) > ms_ssim(
        a, a + rng.normal(0, 60, a.shape), data_range=255)
    with pytest.raises(ValueError, match="161"):
        ms_ssim(a[..., :160, :160], a[..., :160, :160])


def test_laplacian_pyramid_reconstructs_and_is_flat_on_constants() -> None:
    x = _noise((2, 3, 32, 32))
    levels = laplacian_pyramid(x, 3)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    np.testing.assert_allclose(reconstruct_laplacian_pyramid(levels), x, rtol=0, atol=1e-3)
    const = np.full((1, 3, 32, 32), 7.0, np.float32)
    flat = laplacian_pyramid(const, 3)
    np.testing.assert_allclose(flat[0], 0, atol=1e-5)
    np.testing.assert_allclose(flat[-1], 7.0, atol=1e-5)
    np.testing.assert_allclose(pyr_down(const), 7.0, atol=1e-5)


def test_patch_descriptors_take_7x7_neighbourhoods() -> None:
    x = np.arange(2 * 3 * 16 * 16, dtype=np.float32).reshape(2, 3, 16, 16)
    d = patch_descriptors(x, 7, 128, np.random.default_rng(0))
    assert d.shape == (256, 3, 7, 7)
    # inside one patch, moving right adds 1 and down adds 16; patch k belongs to image k // 128
    np.testing.assert_allclose(np.diff(d, axis=3), 1)
    np.testing.assert_allclose(np.diff(d, axis=2), 16)
    assert (d[:128] < 3 * 256).all() and (d[128:] >= 3 * 256).all()


def test_sliced_wasserstein_core_known_answers() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 4)).astype(np.float32)
    assert sliced_wasserstein(a, a[rng.permutation(len(a))]) == pytest.approx(0.0, abs=1e-6)
    # translating one set by c along e1 moves each projection by c * <e1, dir>; for random unit
    # directions in 4-D, E|<e1, dir>| = Gamma(2) / (sqrt(pi) Gamma(2.5)) = 4 / (3 pi)
    shift = np.zeros(4, np.float32)
    shift[0] = 2.0
    value = sliced_wasserstein(a, a + shift, dir_repeats=4, dirs_per_repeat=512)
    assert value == pytest.approx(2.0 * 4 / (3 * math.pi), rel=0.05)


def test_swd_identical_sets_shifted_images_and_noise() -> None:
    rng = np.random.default_rng(0)
    # smooth textures (white noise low-passed), different in every image, values 39..228
    big = pyr_up(pyr_up(rng.normal(0, 1, (16, 3, 10, 10)).astype(np.float32)))
    big = np.clip(big * 40 + 128, 0, 255).astype(np.uint8)
    imgs = big[..., :32, :32]
    same = sliced_wasserstein_distance(imgs, imgs)
    assert set(same) == {"SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"}
    shifted = sliced_wasserstein_distance(imgs, big[..., 4:36, 4:36])  # same textures, moved 4 px
    noise = sliced_wasserstein_distance(imgs, rng.integers(0, 256, imgs.shape, dtype=np.uint8))
    # identical / shifted sets differ only through which patches are drawn; white noise differs
    assert same["SWDx1e3_avg"] < noise["SWDx1e3_avg"] / 3
    assert shifted["SWDx1e3_32"] < noise["SWDx1e3_32"] / 2
    assert shifted["SWDx1e3_avg"] < noise["SWDx1e3_avg"] / 1.5
    # per-channel normalisation: a global brightness offset is invisible
    assert sliced_wasserstein_distance(imgs, imgs + 20) == pytest.approx(same, rel=1e-4)
    # float [-1, 1] input means the same images
    as_float = imgs.astype(np.float32) / 127.5 - 1
    assert sliced_wasserstein_distance(as_float, as_float) == pytest.approx(same, rel=1e-4)
