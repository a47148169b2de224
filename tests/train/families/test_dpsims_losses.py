"""DP-SIMS losses on small hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sdk.train.families.dpsims.losses import (
    class_balanced_weights,
    contrastive_loss,
    discriminator_loss,
    diversity_loss,
    patch_nce,
)
from sdk.train.families.oasis.losses import class_weight_map, focal_loss, n1_target


def _label(ids: list[list[int]], c: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(ids)[None], c).permute(0, 3, 1, 2).float()  # (1, C, H, W)


def test_oasis_class_weights() -> None:
    label = _label([[0, 1, 1, 2]], 3)  # dontcare, two pixels of class 1, one of class 2
    # 4 pixels, 2 classes present: class 1 -> 4 / (2 * 2) = 1, class 2 -> 4 / (2 * 1) = 2
    assert class_weight_map(label).tolist() == [[[0.0, 1.0, 1.0, 2.0]]]
    # without a dontcare label: 3 classes present, counts 1, 2, 1
    torch.testing.assert_close(class_weight_map(label, dontcare=False),
                               torch.tensor([[[4 / 3, 2 / 3, 2 / 3, 4 / 3]]]))


def test_n1_targets() -> None:
    label = _label([[0, 2, 1]], 3)
    assert n1_target(label, True).tolist() == [[[1, 3, 2]]]
    assert n1_target(label, False).tolist() == [[[0, 0, 0]]]


def test_focal_loss_hand_computed() -> None:
    label = _label([[1]], 2)  # one pixel of class 1 -> real target index 2
    logits = torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1, 1)
    p = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).tolist()
    fl = lambda q: -(1 - q) ** 2 * math.log(q)  # noqa: E731
    kw = dict(class_weighting=False, dontcare=False)
    assert focal_loss(logits, label, True, **kw).item() == pytest.approx(fl(p[2]), rel=1e-5)
    assert focal_loss(logits, label, False, **kw).item() == pytest.approx(fl(p[0]), rel=1e-5)
    # gamma 0 is cross-entropy
    assert focal_loss(logits, label, True, gamma=0, **kw).item() == pytest.approx(-math.log(p[2]), rel=1e-5)
    # one-sided smoothing: 0.9 on the class, 0.1 on "fake"; fake targets unchanged
    assert focal_loss(logits, label, True, smoothing=0.1, **kw).item() == pytest.approx(
        0.9 * fl(p[2]) + 0.1 * fl(p[0]), rel=1e-5)
    assert focal_loss(logits, label, False, smoothing=0.1, **kw).item() == pytest.approx(fl(p[0]), rel=1e-5)


def test_focal_loss_class_weighting_on_real_only() -> None:
    label = _label([[0, 1, 1, 2]], 3)
    logits = torch.zeros(1, 4, 1, 4)  # uniform over 4 classes
    fl = -(0.75 ** 2) * math.log(0.25)
    # weights [0, 1, 1, 2] -> mean 1
    assert focal_loss(logits, label, True).item() == pytest.approx(fl * 4 / 4, rel=1e-5)
    label2 = _label([[0, 1, 2, 2]], 3)  # weights [0, 2, 1, 1]
    assert focal_loss(logits, label2, True).item() == pytest.approx(fl, rel=1e-5)
    logits[0, 3, 0, 3] = 5.0  # the class-2 pixel (weight 2) gets easy: weighted loss drops
    assert focal_loss(logits, label, True).item() < fl * 0.51 + 1e-6
    assert focal_loss(logits, label, False).item() == pytest.approx(
        (3 * fl + -(1 - 1 / (3 + math.e ** 5)) ** 2 * math.log(1 / (3 + math.e ** 5))) / 4, rel=1e-5)
    assert discriminator_loss(logits, logits, label, smoothing=0.0).item() == pytest.approx(
        focal_loss(logits, label, True).item() + focal_loss(logits, label, False).item(), rel=1e-6)


def test_patch_nce_hand_computed() -> None:
    # two positions with orthogonal features: positive similarity 1, negative 0
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    for tau in (0.3, 1.0):
        expected = math.log(1 + math.exp(-1 / tau))
        assert patch_nce(f, f, num_negatives=1, tau=tau).item() == pytest.approx(expected, rel=1e-5)
    # swapped positions: the positive is now the dissimilar patch
    swapped = f.flip(-1)
    assert patch_nce(f, swapped, 1, 0.3).item() == pytest.approx(math.log(1 + math.exp(1 / 0.3)), rel=1e-5)


def test_patch_nce_samples_num_negatives_plus_one() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 16, 16, requires_grad=True)
    loss = patch_nce(q, torch.randn(2, 4, 16, 16), num_negatives=128, tau=0.3, generator=g)
    loss.backward()
    # 129 of 256 positions carry gradient in each image
    touched = (q.grad.abs().sum(1) > 0).flatten(1).sum(1)
    assert touched.tolist() == [129, 129]


def _vgg_stub(x: torch.Tensor) -> list[torch.Tensor]:
    """Feature maps at strides 1, 2, 4, 8, 16 (as VGG19's relu1..relu5 stages)."""
    feats, h = [], torch.cat([x, x ** 2], 1)
    for _ in range(5):
        feats.append(h)
        h = F.avg_pool2d(h, 2)
    return feats


def test_contrastive_loss_uses_strides_4_8_16() -> None:
    fake, real = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    f, r = _vgg_stub(fake), _vgg_stub(real)
    # every stride-4/8/16 map has <= 64 positions, so all are used and sampling order does not matter
    expected = sum(patch_nce(f[i], r[i], 128, 0.3).item() for i in (2, 3, 4)) / 3
    assert contrastive_loss(_vgg_stub, fake, real).item() == pytest.approx(expected, rel=1e-5)
    assert contrastive_loss(_vgg_stub, real, real).item() < contrastive_loss(_vgg_stub, fake, real).item()
    with pytest.raises(ValueError, match="strides"):
        contrastive_loss(_vgg_stub, fake, real, scales=(4, 32))


def test_diversity_loss() -> None:
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    z1, z2 = torch.zeros(1, 4), torch.full((1, 4), 2.0)
    assert diversity_loss(a, b, z1, z2, eps=0.0).item() == pytest.approx(4.0)  # 1 / (0.5 / 2)
    assert diversity_loss(a, a * 3, z1, z2).item() > 1e4  # identical outputs: large loss


def test_class_balanced_weights_and_sampler() -> None:
    # classes: dontcare, A (in every image), B (in image 3 only), C (images 0, 1)
    presence = torch.tensor([[5, 9, 0, 1], [0, 9, 0, 2], [0, 9, 0, 0], [0, 9, 4, 0]])
    w = class_balanced_weights(presence, threshold=1.0)
    # f_A = 1 -> 1, f_B = 1/4 -> sqrt(4) = 2, f_C = 1/2 -> sqrt(2); dontcare (f = 1/4) ignored
    torch.testing.assert_close(w, torch.tensor([math.sqrt(2), math.sqrt(2), 1.0, 2.0]))
    assert class_balanced_weights(presence, threshold=0.1).tolist() == [1.0] * 4  # nothing rarer than t
    # the trainer's sampler draws images in proportion to the weights, epoch after epoch
    from sdk.train.trainer.distributed import DistInfo
    from sdk.train.trainer.loop import EpochData

    data = EpochData(list(range(4)), 1, 0, DistInfo(), 0, w)
    drawn = []
    for epoch in range(5000):
        data.epoch = epoch
        drawn += data.epoch_order()
    share = torch.bincount(torch.tensor(drawn), minlength=4).float() / len(drawn)
    torch.testing.assert_close(share, w / w.sum(), atol=0.015, rtol=0)
