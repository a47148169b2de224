"""GroupDNet: parameter count, shapes, per-class grouping, official checkpoint layout."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sdk.train.families.groupdnet import network as gd
from sdk.train.models.official import CheckpointMismatch, check_and_load
from sdk.train.models.registry import _REGISTRY


def preset(name: str):
    return _REGISTRY[name]  # importing groupdnet registered it


def tiny(name: str = "groupdnet-deepfashion", **kw) -> gd.GroupDNetModel:
    p = preset(name)
    torch.manual_seed(0)
    return p.build(**{**p.test_overrides, **kw}).eval()


def test_deepfashion_params_match_paper():
    p = preset("groupdnet-deepfashion")
    with torch.device("meta"):  # no memory, no activations
        model = p.build()
    n_g = sum(t.numel() for t in model.netG.parameters())
    n_all = sum(t.numel() for t in model.parameters())
    assert abs(n_all - p.paper_params) / p.paper_params < 0.01, n_all
    assert 95e6 < n_g < 97e6  # the decoder alone; the paper's 109.1M includes the encoder


def test_table4_group_numbers():
    for name, groups in [("groupdnet-deepfashion", (8, 8, 4, 4, 2, 2, 1)),
                         ("groupdnet-cityscapes", (35, 35, 20, 14, 10, 4, 1)),
                         ("groupdnet-ade20k", (151, 16, 16, 8, 4, 2, 1, 1))]:
        assert preset(name).config.groups == groups
    m = tiny()
    got = [getattr(m.netG, b).conv_0.groups for b in gd.BLOCKS[:7]]
    assert got == [8, 8, 4, 4, 2, 2, 1]
    assert m.netG.fc.groups == 8 and m.netE.layer3[0].groups == 8 and m.netE.fc_mu.groups == 8


def test_forward_shapes():
    m = tiny(height=64, width=64)
    cfg = m.config
    gs = m.graphs()
    with torch.no_grad():
        img = gs["model"].module(*gs["model"].examples(2))
    assert img.shape == (2, 3, 64, 64) and img.abs().max() <= 1
    assert [s.kind for s in gs["model"].inputs] == ["label", "codes"]
    assert gs["model"].inputs[1].shape == (None, 8, cfg.code_dim) and cfg.code_dim == 8
    enc = tiny(height=128, width=128)  # six stride-2 layers need >= 2x2 at the end
    mu, logvar = enc.encode(*enc.graphs()["encoder"].examples(2))
    assert mu.shape == logvar.shape == (2, 8, 8 * 2 * 2)


def test_cityscapes_graph_has_instance_edge():
    p = preset("groupdnet-cityscapes")
    with torch.device("meta"):
        m = p.build(**p.test_overrides)
    assert [s.name for s in m.graphs()["model"].inputs] == ["label", "instance_edge", "codes"]
    assert m.netG.head_0.norm_0.mlp_shared[0].in_channels == 70  # class mask + edge per class


def test_codes_enter_only_their_group():
    """fc is grouped by class: changing class k's code moves only group k's channels."""
    m = tiny(height=64, width=64)
    fc, c, per = m.netG.fc, 8, m.netG.fc.out_channels // 8
    z = torch.randn(1, c, 8)
    z2 = z.clone()
    z2[:, 3] = torch.randn(8)
    with torch.no_grad():
        d = (fc(z.reshape(1, -1, 1, 1)) - fc(z2.reshape(1, -1, 1, 1))).abs().flatten(1).amax(0)
    changed = (d > 0).nonzero().flatten()
    assert changed.min() >= 3 * per and changed.max() < 4 * per and len(changed) > 0


def test_encoder_code_sees_only_its_class():
    """Pixels outside class k leave mu[:, k] unchanged (grouped convs, masked input)."""
    m = tiny(height=128, width=128)
    image, label = m.graphs()["encoder"].examples(1)  # label: class ids (1, H, W)
    other = image + 0.5 * (label != 2).float()[:, None]  # change everything but class 2
    with torch.no_grad():
        mu_a, _ = m.encode(image, label)
        mu_b, _ = m.encode(other, label)
    diff = (mu_a - mu_b).abs().amax(-1)[0]
    assert diff[2] < 1e-6 and (diff[torch.arange(8) != 2] > 1e-4).all()


def _official_crop(image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The official per-class crop-and-resize, written as a loop."""
    out = []
    for k in range(label.shape[1]):
        seg = image[0] * label[0, k]
        ys, xs = label[0, k].nonzero(as_tuple=True)
        if len(ys):
            seg = seg[:, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            seg = F.interpolate(seg[None], size=image.shape[-2:])[0]
        out.append(seg)
    return torch.cat(out)[None]


def test_crop_classes_matches_loop():
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(1, 40, 56, dtype=torch.long)
    ids[:, 5:17, 9:30] = 1
    ids[:, 20:39, 3:11] = 2
    ids[:, 33, 50] = 3  # a single pixel; class 4 absent
    label = F.one_hot(ids, 5).permute(0, 3, 1, 2).float()
    image = torch.rand(1, 3, 40, 56, generator=g) * 2 - 1
    torch.testing.assert_close(gd.crop_classes(image, label), _official_crop(image, label))


def _sn(prefix: str, shape: tuple[int, ...], bias: bool = True) -> dict[str, tuple[int, ...]]:
    d = {f"{prefix}.weight_orig": shape, f"{prefix}.weight_u": (shape[0],),
         f"{prefix}.weight_v": (shape[1] * shape[2] * shape[3],)}
    if bias:
        d[f"{prefix}.bias"] = (shape[0],)
    return d


def official_deepfashion_keys(ngf: int, c: int = 8) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official DeepFashionGenerator (SPADEV2ResnetBlock + GROUP_SPADE
    in 'deepfashion' mode, spectral, syncbatch), written from the official code."""
    nf = ngf
    keys = {"fc.weight": (16 * nf, 8 * c // c, 3, 3), "fc.bias": (16 * nf,),
            "conv_img.weight": (3, nf, 3, 3), "conv_img.bias": (3,)}
    blocks = [("head_0", 16 * nf, 16 * nf, c), ("G_middle_0", 16 * nf, 16 * nf, c),
              ("G_middle_1", 16 * nf, 16 * nf, c // 2), ("up_0", 16 * nf, 8 * nf, c // 2),
              ("up_1", 8 * nf, 4 * nf, c // 4), ("up_2", 4 * nf, 2 * nf, c // 4),
              ("up_3", 2 * nf, nf, c // 8)]
    for name, fin, fout, g in blocks:
        fmid = min(fin, fout)
        keys.update(_sn(f"{name}.conv_0", (fmid, fin // g, 3, 3)))
        keys.update(_sn(f"{name}.conv_1", (fout, fmid // g, 3, 3)))
        norms = [("norm_0", fin), ("norm_1", fmid)]
        if fin != fout:
            keys.update(_sn(f"{name}.conv_s", (fout, fin // g, 1, 1), bias=False))
            norms.append(("norm_s", fin))
        for norm, nc in norms:
            p = f"{name}.{norm}"
            keys.update({f"{p}.param_free_norm.running_mean": (nc,),
                         f"{p}.param_free_norm.running_var": (nc,),
                         f"{p}.param_free_norm.num_batches_tracked": (),
                         f"{p}.mlp_shared.0.weight": (128, c // g, 3, 3), f"{p}.mlp_shared.0.bias": (128,),
                         f"{p}.mlp_gamma.weight": (nc, 128 // g, 3, 3), f"{p}.mlp_gamma.bias": (nc,),
                         f"{p}.mlp_beta.weight": (nc, 128 // g, 3, 3), f"{p}.mlp_beta.bias": (nc,)})
    return keys


def official_encoder_keys(ndf: int, c: int = 8) -> dict[str, tuple[int, ...]]:
    widths = [3 * c, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf, 8 * ndf]
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(6):
        keys.update(_sn(f"layer{i + 1}.0", (widths[i + 1], widths[i] // c, 3, 3), bias=False))
    for head in ("fc_mu", "fc_var"):
        keys.update({f"{head}.weight": (8 * c, 8 * ndf // c, 3, 3), f"{head}.bias": (8 * c,)})
    return keys


def _fake_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: (torch.tensor(0) if s == () else torch.rand(s)) for k, s in shapes.items()}


def test_official_state_dicts_load_strictly():
    m = tiny(height=64, width=64)
    parts = m.official_parts()
    g_state = _fake_state(official_deepfashion_keys(ngf=16))
    check_and_load(parts["net_G"], g_state, "synthetic net_G")
    torch.testing.assert_close(m.netG.up_1.norm_0.mlp_gamma.weight, g_state["up_1.norm_0.mlp_gamma.weight"])
    check_and_load(parts["net_E"], _fake_state(official_encoder_keys(ndf=16)), "synthetic net_E")

    bad = dict(g_state)
    bad.pop("up_3.conv_s.weight_orig")
    bad["up_3.conv_s.bias"] = torch.zeros(16)
    bad["fc.weight"] = torch.zeros(256, 64, 3, 3)  # an ungrouped fc
    with pytest.raises(CheckpointMismatch) as err:
        check_and_load(parts["net_G"], bad, "broken net_G")
    msg = str(err.value)
    assert "up_3.conv_s.weight_orig" in msg and "up_3.conv_s.bias" in msg and "fc.weight" in msg


def test_ade20k_up_4_is_built_but_not_run():
    p = preset("groupdnet-ade20k")
    with torch.device("meta"):
        m = p.build(**p.test_overrides)
    assert m.netG.up_4.conv_0.groups == 1 and m.netG.conv_img.in_channels == 2 * m.config.ngf
    assert m.netG.head_0.conv_0.in_channels == 16 * 151


def test_bad_groups_rejected():
    cfg = dataclasses.replace(preset("groupdnet-deepfashion").config, groups=(8, 8, 4))
    with pytest.raises(ValueError, match="7 CG-Blocks"):
        gd.GroupDNetGenerator(cfg)
