"""mCSD / mOCD mechanics with a small random feature network."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sdk.train.metrics import get_metric
from sdk.train.metrics.mcsd import masked_distance, mcsd_mocd

torch.manual_seed(0)
# 1x1 convs and a 2x2 pool: no feature crosses the (even-aligned) class boundaries
FEATS = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 8, 1)).eval()
WIDE = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)).eval()


def features(x):
    return [FEATS[:2](x), FEATS(x)]


def wide_features(x):
    return [WIDE[:2](x), WIDE(x)]


def label_map() -> torch.Tensor:
    ids = torch.zeros(2, 16, 16, dtype=torch.long)
    ids[:, :, 8:] = 1
    ids[1, :4, :4] = 2
    return F.one_hot(ids, 3).permute(0, 3, 1, 2).float()


def local_generator(label, codes):
    """Each class paints its own region from its own code: perfect class locality."""
    colours = torch.tanh(codes[:, :, :3])  # (N, C, 3)
    return torch.einsum("nck,nchw->nkhw", colours, label)


def test_local_generator_has_zero_other_class_diversity():
    r = mcsd_mocd(local_generator, label_map(), code_dim=4, features=features, samples=3)
    assert r["mCSD"] > 1e-3 and r["mOCD"] == pytest.approx(0, abs=1e-7)
    # 3x3 receptive fields leak a little across the boundary, as LPIPS does
    w = mcsd_mocd(local_generator, label_map(), code_dim=4, features=wide_features, samples=3)
    assert 0 < w["mOCD"] < 0.2 * w["mCSD"]


def test_global_and_constant_generators():
    def global_gen(label, codes):  # the resampled code tints the whole image
        return local_generator(label, codes) + torch.tanh(codes.sum(1)[:, :3, None, None])

    g = mcsd_mocd(global_gen, label_map(), code_dim=4, features=features)
    assert g["mOCD"] > 1e-3
    c = mcsd_mocd(lambda lab, z: lab[:, :3] * 0.5, label_map(), code_dim=4, features=features)
    assert c == {"mCSD": 0.0, "mOCD": 0.0}


def test_masked_distance_respects_mask():
    x = torch.zeros(1, 3, 16, 16)
    y = x.clone()
    y[..., :8] = 1.0  # differs only on the left half
    left = torch.zeros(1, 1, 16, 16)
    left[..., :8] = 1
    d_right = masked_distance(x, y, 1 - left, lambda t: [t], scale_input=False)
    d_left = masked_distance(x, y, left, lambda t: [t], scale_input=False)
    assert d_right.item() == 0 and d_left.item() > 0
    lin = [torch.zeros(1, 3, 1, 1)]
    assert masked_distance(x, y, left, lambda t: [t], lin=lin, scale_input=False).item() == 0


def test_registered():
    assert get_metric("mcsd") is mcsd_mocd
