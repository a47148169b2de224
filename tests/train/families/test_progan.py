"""Progressive GAN: Table 2 sizes, progressive growing with fade-in, equalized lr, minibatch stddev."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sdk.train.families.progan.network import (
    ProGANConfig,
    ProGANDiscriminator,
    ProGANGenerator,
    ProGANModel,
)
from sdk.train.models.layers.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
)
from sdk.train.models.registry import get_preset

SMALL = ProGANConfig(height=32, width=32, fmap_base=64, fmap_max=16, latent_dim=16)


def _meta(cfg: ProGANConfig) -> ProGANModel:
    with torch.device("meta"):  # parameters are not materialised
        return ProGANModel(cfg)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_celebahq_1024_generator_matches_paper_param_count() -> None:
    preset = get_preset("progan-celebahq-1024")
    model = _meta(preset.config)
    assert preset.paper_params == 23.1e6
    assert abs(_count(model.netG) - 23.1e6) / 23.1e6 < 0.01
    with torch.device("meta"):
        netD = model.build_discriminator()
    assert abs(_count(netD) - 23.1e6) / 23.1e6 < 0.01  # Table 2: the discriminator has 23.1M too


def test_widths_follow_table_2() -> None:
    netG = _meta(get_preset("progan-celebahq-1024").config).netG
    widths = [rgb.weight.shape[1] for rgb in netG.to_rgb]  # 4x4 .. 1024x1024
    assert widths == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert netG.dense.weight.shape == (512 * 16, 512)


def test_presets_are_unconditional_and_deployable() -> None:
    for name, res in (("progan-celebahq-1024", 1024), ("progan-256", 256), ("progan-64", 64)):
        preset = get_preset(name)
        model = _meta(preset.config)
        assert model.task == "unconditional" and preset.config.num_classes is None
        g = model.graphs()["model"]
        (z,), (img,) = g.inputs, g.outputs
        assert (z.name, z.kind, z.shape, z.attrs) == ("z", "latent", (None, 512), {"distribution": "normal", "normalized": True})
        assert (img.name, img.kind, img.shape) == ("image", "image", (None, 3, res, res))
        assert model.deploy_info()["resolution"] == [res, res]


def test_forward_shapes_at_every_level() -> None:
    torch.manual_seed(0)
    netG, netD = ProGANGenerator(SMALL), ProGANDiscriminator(SMALL)
    z = torch.randn(4, 16)
    for level in range(netG.max_level + 1):
        img = netG(z, level, 1.0)
        assert img.shape == (4, 3, 4 * 2**level, 4 * 2**level)
        assert netD(img, level, 0.5).shape == (4, 1)


def test_fade_in_alpha_endpoints() -> None:
    torch.manual_seed(0)
    netG = ProGANGenerator(SMALL)
    z = torch.randn(2, 16)
    top = netG.max_level
    with torch.no_grad():
        low = netG(z, top - 1, 1.0)
        faded0, faded1, half = netG(z, top, 0.0), netG(z, top, 1.0), netG(z, top, 0.5)
        # alpha = 1 is the new block alone: run it by hand
        x = netG.norm(F.leaky_relu(netG.dense(netG.norm(z)).view(2, -1, 4, 4), 0.2))
        x = netG.norm(F.leaky_relu(netG.conv(x), 0.2))
        for block in netG.blocks:
            x = block(x)
        new = netG.to_rgb[top](x)
    torch.testing.assert_close(faded0, F.interpolate(low, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(faded1, new)
    torch.testing.assert_close(half, 0.5 * (faded0 + faded1))
    assert not torch.allclose(faded0, faded1)


def test_discriminator_fade_in_alpha_zero_sees_the_downsampled_image() -> None:
    torch.manual_seed(0)
    netD = ProGANDiscriminator(SMALL)
    img = torch.randn(4, 3, 32, 32)
    top = netD.max_level
    with torch.no_grad():
        torch.testing.assert_close(netD(img, top, 0.0), netD(F.avg_pool2d(img, 2), top - 1, 1.0))
        assert not torch.allclose(netD(img, top, 0.0), netD(img, top, 1.0))


def test_set_lod_matches_the_official_convention() -> None:
    model = ProGANModel(SMALL)  # max_level 3 (32x32)
    netD = model.build_discriminator()
    model.set_lod(0.0, netD)
    assert (model.netG.level, model.netG.alpha) == (3, 1.0)
    model.set_lod(1.25, netD)
    assert (model.netG.level, model.netG.alpha) == (2, 0.75) == (netD.level, netD.alpha)
    assert model.netG.lod == pytest.approx(1.25)
    model.set_lod(3.0)
    assert model(torch.randn(1, 16)).shape == (1, 3, 4, 4)
    with pytest.raises(ValueError):
        model.set_lod(3.5)


def test_deploy_graph_is_fully_grown_whatever_the_training_lod() -> None:
    model = ProGANModel(SMALL)
    model.set_lod(2.5)
    out = model.graphs()["model"].module(torch.randn(2, 16))
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1


def test_equalized_lr_scales_weights_at_run_time() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 4, 3)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(8 * 9))
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))
    assert torch.count_nonzero(conv.bias) == 0
    lin = EqualizedLinear(512, 10, gain=1.0)
    assert lin.scale == pytest.approx(1 / math.sqrt(512))
    v = torch.randn(3, 512)
    torch.testing.assert_close(lin(v), v @ (lin.weight * lin.scale).t())
    # stored weights are N(0, 1): the He constant is not baked into the parameter
    big = EqualizedConv2d(512, 512, 3)
    assert big.weight.std().item() == pytest.approx(1.0, abs=0.01)
    assert (big.weight * big.scale).std().item() == pytest.approx(math.sqrt(2 / 4608), rel=0.02)


def test_pixel_norm_gives_unit_mean_square_per_pixel() -> None:
    x = torch.randn(2, 7, 3, 3) * 5
    y = PixelNorm()(x)
    torch.testing.assert_close(y.pow(2).mean(1), torch.ones(2, 3, 3))
    v = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(PixelNorm()(v), v / math.sqrt(12.5))


def test_minibatch_stddev_hand_computed() -> None:
    # 4 samples, 1 channel, 1x2 pixels
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 4.0], [2.0, 0.0]]).view(4, 1, 1, 2)
    # whole batch: pixel 0 has std 1, pixel 1 std sqrt(2.75); their mean everywhere
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (4, 2, 1, 2)
    torch.testing.assert_close(out[:, :1], x)
    torch.testing.assert_close(out[:, 1], torch.full((4, 1, 2), (1 + math.sqrt(2.75)) / 2))
    # groups of 2: samples {0, 2} (stds 0 and 2) and {1, 3} (stds 0 and 1); eps = 1e-8 sits
    # inside the square root, so a zero deviation counts as 1e-4
    out2 = MinibatchStdDev(group_size=2)(x)[:, 1, 0, 0]
    a, b = (1e-4 + 2) / 2, (1e-4 + 1) / 2
    torch.testing.assert_close(out2, torch.tensor([a, b, a, b]))
