"""pix2pixHD: official key layout, strict loading, shapes, multi-scale D, instance pooling."""
from __future__ import annotations

import pytest
import torch

from sdk.train.families.pix2pixhd.losses import pix2pixhd_losses
from sdk.train.families.pix2pixhd.network import (
    Pix2PixHDConfig,
    Pix2PixHDModel,
    instance_average,
)
from sdk.train.models.official import CheckpointMismatch, check_and_load, load_official
from sdk.train.models.registry import get_preset

# Reduced global generator: ngf 4, two downsamplings, one residual block, 35 labels + edge.
SMALL = Pix2PixHDConfig(height=32, width=64, ngf=4, n_downsample_global=2, n_blocks_global=1)

# Key names and shapes as NVIDIA/pix2pixHD's GlobalGenerator lays out its Sequential for
# this configuration (pad/conv/norm/relu stem, conv-norm-relu per downsampling, ResnetBlock
# with conv_block = pad/conv/norm/relu/pad/conv/norm, convT-norm-relu per upsampling,
# pad/conv/tanh head), written out by hand.
OFFICIAL_SMALL_G = {
    "model.1.weight": (4, 36, 7, 7), "model.1.bias": (4,),
    "model.4.weight": (8, 4, 3, 3), "model.4.bias": (8,),
    "model.7.weight": (16, 8, 3, 3), "model.7.bias": (16,),
    "model.10.conv_block.1.weight": (16, 16, 3, 3), "model.10.conv_block.1.bias": (16,),
    "model.10.conv_block.5.weight": (16, 16, 3, 3), "model.10.conv_block.5.bias": (16,),
    "model.11.weight": (16, 8, 3, 3), "model.11.bias": (8,),
    "model.14.weight": (8, 4, 3, 3), "model.14.bias": (4,),
    "model.18.weight": (3, 4, 7, 7), "model.18.bias": (3,),
}


def _official_names_local_full() -> set[str]:
    """The released label2city_1024p generator (--netG local --ngf 32): G1 at width 64 with
    four downsamplings and nine blocks minus its head, plus model1_1 / model1_2."""
    convs = [1, 4, 7, 10, 13, 25, 28, 31, 34]
    names = [f"model.{i}" for i in convs]
    names += [f"model.{i}.conv_block.{j}" for i in range(16, 25) for j in (1, 5)]
    names += ["model1_1.1", "model1_1.4", "model1_2.3", "model1_2.7"]
    names += [f"model1_2.{i}.conv_block.{j}" for i in range(3) for j in (1, 5)]
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def _meta(cfg: Pix2PixHDConfig) -> Pix2PixHDModel:
    with torch.device("meta"):
        return Pix2PixHDModel(cfg)


def test_full_size_local_enhancer_has_the_official_key_names() -> None:
    model = _meta(get_preset("pix2pixhd-cityscapes-2048").config)
    sd = model.official_parts()["net_G"].state_dict()
    assert set(sd) == _official_names_local_full()
    assert sd["model.1.weight"].shape == (64, 36, 7, 7)  # G1 runs at ngf * 2 = 64
    assert sd["model.16.conv_block.1.weight"].shape == (1024, 1024, 3, 3)
    assert sd["model1_1.1.weight"].shape == (32, 36, 7, 7)
    assert sd["model1_2.7.weight"].shape == (3, 32, 7, 7)


def test_full_size_param_counts() -> None:
    # global G, ngf 64: stem 36->64 (7x7), 4 halvings to 1024, 9 blocks, 4 doublings, head
    def conv(i: int, o: int, k: int) -> int:
        return i * o * k * k + o
    widths = [64, 128, 256, 512, 1024]
    expected = conv(36, 64, 7) + conv(64, 3, 7) + 9 * 2 * conv(1024, 1024, 3)
    expected += sum(conv(a, b, 3) + conv(b, a, 3) for a, b in zip(widths, widths[1:]))
    g = _meta(get_preset("pix2pixhd-cityscapes-1024").config).netG
    assert sum(p.numel() for p in g.parameters()) == expected == 182_546_755
    local = _meta(get_preset("pix2pixhd-cityscapes-2048").config).netG
    extra = conv(36, 32, 7) + conv(32, 64, 3) + 3 * 2 * conv(64, 64, 3) + conv(64, 32, 3) + conv(32, 3, 7)
    assert sum(p.numel() for p in local.parameters()) == expected - conv(64, 3, 7) + extra


def test_synthetic_official_checkpoint_loads_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    model = Pix2PixHDModel(SMALL)
    state = {k: torch.randn(shape) for k, shape in OFFICIAL_SMALL_G.items()}
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel prefix
    load_official(model, {"net_G": path})
    for k, v in state.items():
        torch.testing.assert_close(model.netG.state_dict()[k], v)


def test_wrong_checkpoint_is_refused_listing_keys(tmp_path) -> None:
    model = Pix2PixHDModel(SMALL)
    state = {k: torch.randn(shape) for k, shape in OFFICIAL_SMALL_G.items()}
    state["model.19.weight"] = state.pop("model.18.weight")
    state["model.4.weight"] = torch.randn(8, 5, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatch) as err:
        load_official(model, {"net_G": path})
    msg = str(err.value)
    assert "model.18.weight" in msg and "model.19.weight" in msg and "model.4.weight" in msg


def test_discriminator_has_official_feature_matching_layout() -> None:
    model = Pix2PixHDModel(SMALL)
    netD = model.build_discriminator()  # num_D = 2, n_layers = 3
    expected = {f"scale{i}_layer{j}.0.{p}" for i in range(2) for j in range(5) for p in ("weight", "bias")}
    assert set(netD.state_dict()) == expected
    assert netD.state_dict()["scale0_layer0.0.weight"].shape == (64, 35 + 1 + 3, 4, 4)
    assert netD.state_dict()["scale0_layer3.0.weight"].shape == (512, 256, 4, 4)
    check_and_load(netD, {k: torch.zeros_like(v) for k, v in netD.state_dict().items()}, "D")


def test_multiscale_discriminator_runs_full_resolution_on_the_last_scale() -> None:
    torch.manual_seed(0)
    netD = Pix2PixHDModel(SMALL).build_discriminator()
    x = torch.randn(1, 39, 32, 64)
    out = netD(x)
    assert len(out) == 2 and all(len(feats) == 5 for feats in out)
    h = x
    for j in range(5):
        h = getattr(netD, f"scale1_layer{j}")(h)
    torch.testing.assert_close(out[0][-1], h)
    assert out[1][-1].shape[-1] < out[0][-1].shape[-1]


@pytest.mark.parametrize("name", ["pix2pixhd-cityscapes-1024", "pix2pixhd-cityscapes-2048"])
def test_graph_inputs_and_forward_shape(name: str) -> None:
    preset = get_preset(name)
    model = preset.build(**preset.test_overrides).eval()
    g = model.graphs()["model"]
    assert [(t.name, t.kind) for t in g.inputs] == [("label", "label"), ("instance_edge", "instance_edge")]
    assert g.inputs[0].attrs["num_classes"] == 35 and g.inputs[0].shape == (None, 32, 64)
    with torch.no_grad():
        out = g.module(*g.examples(2))
    assert out.shape == (2, 3, 32, 64) and out.abs().max() <= 1
    assert model.deploy_info()["num_classes"] == 35


def test_instance_average_pools_per_instance_and_sample() -> None:
    feats = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    feats[1] *= 10
    inst = torch.tensor([[4, 4], [9, 4]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    out = instance_average(feats, inst)
    torch.testing.assert_close(out[0, 0], torch.tensor([[11 / 3, 11 / 3], [5.0, 11 / 3]]))
    torch.testing.assert_close(out[1, 0], 10 * out[0, 0])


def test_encoder_part_only_with_instance_features() -> None:
    assert "net_E" not in Pix2PixHDModel(SMALL).official_parts()
    import dataclasses
    model = Pix2PixHDModel(dataclasses.replace(SMALL, instance_feat=True, nef=4, n_downsample_E=2))
    assert model.netG.model[1].in_channels == 35 + 1 + 3
    feats = model.netE(torch.randn(1, 3, 32, 64), torch.randint(0, 3, (1, 1, 32, 64)))
    assert feats.shape == (1, 3, 32, 64)
    # official Encoder, two downsamplings: stem conv 1, convs 4 / 7, convTs 10 / 13, head conv 17
    names = {f"model.{i}.{p}" for i in (1, 4, 7, 10, 13, 17) for p in ("weight", "bias")}
    assert set(model.official_parts()["net_E"].state_dict()) == names


def test_losses_follow_the_official_weighting() -> None:
    torch.manual_seed(0)
    model = Pix2PixHDModel(SMALL)
    netD = model.build_discriminator()
    cond = torch.randn(1, 36, 32, 64)
    real = torch.rand(1, 3, 32, 64) * 2 - 1
    fake = model.netG(cond)
    identity_vgg = lambda x: [x, x[:, :1]]  # noqa: E731 - a stand-in feature extractor
    from sdk.train.losses import VGGLoss
    losses = pix2pixhd_losses(netD, cond, real, fake, vgg_loss=VGGLoss(identity_vgg, (1.0, 0.5)))
    assert set(losses) == {"G_GAN", "G_GAN_Feat", "G_VGG", "D_real", "D_fake"}
    pred_fake = netD(torch.cat([cond, fake], 1))
    pred_real = netD(torch.cat([cond, real], 1))
    g_gan = sum(((p[-1] - 1) ** 2).mean() for p in pred_fake)  # LSGAN, summed over the 2 scales
    fm = sum(10.0 / 2 * (f - r).abs().mean() for pf, pr in zip(pred_fake, pred_real)
             for f, r in zip(pf[:-1], pr[:-1]))
    vgg = 10.0 * ((fake - real).abs().mean() + 0.5 * (fake[:, :1] - real[:, :1]).abs().mean())
    torch.testing.assert_close(losses["G_GAN"], g_gan)
    torch.testing.assert_close(losses["G_GAN_Feat"], fm)
    torch.testing.assert_close(losses["G_VGG"], vgg)
    torch.testing.assert_close(losses["D_fake"], sum((p[-1] ** 2).mean() for p in pred_fake))
    losses["G_GAN"].backward()
    assert model.netG.model[1].weight.grad is not None
