"""Multi-scale PatchGAN: official NVlabs/SPADE key names and output pyramid."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from sdk.train.families.spade.discriminator import MultiscaleDiscriminator
from sdk.train.models.official import check_and_load


def official_d_keys(input_nc: int, ndf: int = 64) -> dict[str, tuple[int, ...]]:
    """latest_net_D.pth of SPADE (num_D=2, n_layers_D=4, spectralinstance), from the code."""
    keys: dict[str, tuple[int, ...]] = {}
    chans = [(input_nc, ndf), (ndf, 2 * ndf), (2 * ndf, 4 * ndf), (4 * ndf, 8 * ndf)]
    for d in range(2):
        p = f"discriminator_{d}"
        keys[f"{p}.model0.0.weight"] = (ndf, input_nc, 4, 4)
        keys[f"{p}.model0.0.bias"] = (ndf,)
        for i, (cin, cout) in enumerate(chans[1:], start=1):
            keys[f"{p}.model{i}.0.0.weight_orig"] = (cout, cin, 4, 4)
            keys[f"{p}.model{i}.0.0.weight_u"] = (cout,)
            keys[f"{p}.model{i}.0.0.weight_v"] = (cin * 16,)
        keys[f"{p}.model4.0.weight"] = (1, 8 * ndf, 4, 4)
        keys[f"{p}.model4.0.bias"] = (1,)
    return keys


def test_official_keys_load():
    d = MultiscaleDiscriminator(input_nc=11, ndf=8)
    state = {k: torch.rand(s) for k, s in official_d_keys(11, ndf=8).items()}
    check_and_load(d, state, "synthetic net_D")
    assert set(d.state_dict()) == set(state)


def test_outputs_and_scales():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(input_nc=4, ndf=8, num_D=2).eval()
    x = torch.randn(2, 4, 64, 64)
    out = d(x)
    assert len(out) == 2 and all(len(o) == 5 for o in out)
    assert [o.shape[-1] for o in out[0]] == [33, 17, 9, 10, 11]
    assert [o.shape[-1] for o in out[1]] == [17, 9, 5, 6, 7]
    assert out[0][-1].shape[1] == 1 and out[0][3].shape[1] == 64
    # scale 1 is discriminator_1 on the 3x3 / stride-2 average pool (padding not counted)
    pooled = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    torch.testing.assert_close(out[1][-1], d.discriminator_1(pooled)[-1])
    assert [len(o) for o in d(x, features=False)] == [1, 1]
