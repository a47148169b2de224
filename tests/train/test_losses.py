"""GAN, feature-matching, VGG and KL losses on hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from sdk.train.losses import (
    GANLoss,
    VGG19Features,
    VGGLoss,
    feature_matching_loss,
    kld_loss,
)

P = torch.tensor([[-2.0, 0.5], [1.5, 3.0]])


def test_hinge():
    h = GANLoss("hinge")
    # D real: mean(max(0, 1 - p)) = (3 + 0.5 + 0 + 0) / 4
    assert h(P, True).item() == pytest.approx(0.875)
    # D fake: mean(max(0, 1 + p)) = (0 + 1.5 + 2.5 + 4) / 4
    assert h(P, False).item() == pytest.approx(2.0)
    assert h(P, True, for_discriminator=False).item() == pytest.approx(-0.75)
    with pytest.raises(ValueError):
        h(P, False, for_discriminator=False)


def test_ls_original_w():
    assert GANLoss("ls")(P, True).item() == pytest.approx((9 + 0.25 + 0.25 + 4) / 4)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731 - softplus
    want = (sp(2.0) + sp(-0.5) + sp(-1.5) + sp(-3.0)) / 4
    assert GANLoss("original")(P, True).item() == pytest.approx(want, rel=1e-6)
    assert GANLoss("w")(P, False).item() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        GANLoss("wgan-gp")


def test_multiscale_average_uses_last_output():
    feats = [[torch.full((1, 1, 2, 2), 9.0), P], [torch.zeros(1), torch.tensor([2.0])]]
    # scale 0: 0.875, scale 1: max(0, 1 - 2) = 0
    assert GANLoss("hinge")(feats, True).item() == pytest.approx(0.875 / 2)


def test_feature_matching():
    fake = [[torch.ones(2), torch.zeros(3), torch.tensor([5.0])], [torch.full((2,), 3.0), torch.zeros(1)]]
    real = [[torch.zeros(2), torch.full((3,), 2.0), torch.tensor([-5.0])], [torch.ones(2), torch.zeros(1)]]
    # scale 0: L1 1 + L1 2 (prediction excluded); scale 1: L1 2; x 10 / 2 scales
    assert feature_matching_loss(fake, real).item() == pytest.approx((1 + 2 + 2) * 10 / 2)


def test_kld():
    mu, logvar = torch.tensor([1.0, 0.0]), torch.tensor([0.0, math.log(2.0)])
    want = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 0 - 2))
    assert kld_loss(mu, logvar).item() == pytest.approx(want)
    assert kld_loss(torch.zeros(3), torch.zeros(3)).item() == 0


def test_vgg19_names_and_local_load(tmp_path):
    net = VGG19Features()
    convs = [k for k in net.state_dict() if k.endswith(".weight")]
    assert convs[0] == "features.0.weight" and convs[-1] == "features.34.weight" and len(convs) == 16
    assert net.state_dict()["features.28.weight"].shape == (512, 512, 3, 3)
    state = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = VGG19Features.from_file(tmp_path / "vgg19.pth")
    torch.testing.assert_close(loaded.features[34].weight, state["features.34.weight"])
    assert not any(p.requires_grad for p in loaded.parameters())
    outs = loaded(torch.randn(1, 3, 32, 32))
    assert [o.shape[1:] for o in outs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_vgg_loss_weights():
    def fake_vgg(x):
        return [x * (i + 1) for i in range(5)]
    x, y = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    want = sum(w * (i + 1) for i, w in enumerate([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1]))
    assert VGGLoss(fake_vgg)(x, y).item() == pytest.approx(want)
