"""DP-SIMS generator (mapping, attention pyramid, SPADE image path) and discriminator."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sdk.train.families.dpsims.discriminator import (
    ConvNeXt,
    DPSIMSDiscriminator,
    DPSIMSDiscriminatorConfig,
)
from sdk.train.families.dpsims.network import DPSIMSConfig, DPSIMSModel, Mapping
from sdk.train.models.layers.attention import CrossAttention2d
from sdk.train.models.official import CheckpointMismatch
from sdk.train.models.registry import _REGISTRY

SMALL = dict(channels_G=2, spade_hidden=4, pyramid_dim=8, w_dim=8, mlp_hidden=8, n_tokens=3)


def _onehot(n: int, c: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return F.one_hot(torch.randint(0, c, (n, h, w), generator=g), c).permute(0, 3, 1, 2).float()


def test_full_size_layout_and_params() -> None:
    cfg = _REGISTRY["dpsims-ade20k"].config
    with torch.device("meta"):
        g = DPSIMSModel(cfg).netG
    widths = [g.fc.out_channels] + [b.conv_1.out_channels for b in g.body]
    assert widths == [1024, 1024, 1024, 512, 256, 128, 64]
    assert [type(b).__name__ for b in g.pyramid] == ["ConvBlock"] * 3 + ["AttentionBlock"] * 2
    # mapping: 64 -> 256 -> 256 -> n_k x 256, written out by hand
    n_k = cfg.n_tokens
    assert sum(p.numel() for p in g.mapping.parameters()) == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 256 * n_k + 256 * n_k)
    # attention inner width = 64 // 2 = 32: q from 64, k/v from w (256), out back to 64
    cross = g.pyramid[3].cross
    assert (cross.to_q.out_features, cross.to_k.in_features, cross.to_out.out_features) == (32, 256, 64)
    total = sum(p.numel() for p in g.parameters())
    assert 65e6 < total < 80e6, total  # an OASIS-sized generator (OASIS: 74.3M)


@pytest.mark.parametrize("name,classes,size", [
    ("dpsims-ade20k", 151, (256, 256)), ("dpsims-cityscapes", 35, (256, 512)), ("dpsims-coco", 183, (256, 256))])
def test_presets_and_graph(name: str, classes: int, size: tuple[int, int]) -> None:
    cfg = _REGISTRY[name].config
    assert (cfg.num_classes, cfg.height, cfg.width, cfg.z_dim) == (classes, *size, 64)
    g = _REGISTRY[name].build(**_REGISTRY[name].test_overrides).graphs()["model"]
    assert [(s.name, s.kind) for s in g.inputs] == [("label", "label"), ("z", "latent")]
    assert g.inputs[1].shape == (None, 64) and g.inputs[1].attrs == {"distribution": "sphere"}


def test_z_is_normalised_to_the_sphere() -> None:
    m = Mapping(DPSIMSConfig(num_classes=3, height=32, width=32, **SMALL))
    z = torch.randn(4, 64)
    w = m(z)
    assert w.shape == (4, 3, 8)
    torch.testing.assert_close(m(3.7 * z), w)
    torch.testing.assert_close(m(z / z.norm(dim=1, keepdim=True)), w)


def test_gate_starts_at_zero_so_z_enters_only_once_trained() -> None:
    model = DPSIMSModel(DPSIMSConfig(num_classes=5, height=32, width=64, **SMALL)).eval()
    gates = [b.cross.gate for b in model.netG.pyramid if hasattr(b, "cross")]
    assert len(gates) == 2 and all(float(g.detach()) == 0.0 for g in gates)
    seg, z1, z2 = _onehot(2, 5, 32, 64), torch.randn(2, 64), torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(model(seg, z1), model(seg, z2))  # noise enters only via cross-attention
        for g in gates:
            g.fill_(1.0)
        out = model(seg, z1)
        assert not torch.allclose(out, model(seg, z2))
    assert out.shape == (2, 3, 32, 64)


def test_cross_attention_is_softmax_qk_v() -> None:
    torch.manual_seed(0)
    att = CrossAttention2d(8, 6, divider=2)
    with torch.no_grad():
        att.gate.fill_(0.5)
    x, ctx = torch.randn(2, 8, 3, 5), torch.randn(2, 4, 6)
    tok = x.flatten(2).transpose(1, 2)
    q, k, v = att.to_q(tok), att.to_k(ctx), att.to_v(ctx)
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4), -1)
    ref = x + 0.5 * att.to_out(a @ v).transpose(1, 2).reshape(2, 8, 3, 5)
    torch.testing.assert_close(att(x, ctx), ref)


def test_deploy_graph_clamps_raw_output() -> None:
    model = DPSIMSModel(DPSIMSConfig(num_classes=4, height=32, width=64, **SMALL)).eval()
    with torch.no_grad():
        model.netG.conv_img.bias.fill_(3.0)
        g = model.graphs()["model"]
        x = g.examples(2)
        raw, out = model(*g.as_one_hot(x)), g.module(*x)
    assert raw.max() > 1.5  # no tanh in the generator
    assert out.shape == (2, 3, 32, 64) and out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out, raw.clamp(-1, 1))


# --- discriminator -------------------------------------------------------------------

TINY_D = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), width=8)


def test_discriminator_shapes_and_frozen_backbone() -> None:
    d = DPSIMSDiscriminator(DPSIMSDiscriminatorConfig(num_classes=6, **TINY_D)).train()
    assert not d.backbone.training and d.feature_norm[0].training
    assert all(not p.requires_grad for p in d.backbone.parameters())
    img = torch.rand(2, 3, 64, 96) * 2 - 1
    feats = d.conditioned_features(img)
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 24), (16, 8, 12), (24, 4, 6), (32, 2, 3)]
    assert all(f.abs().max() < 1 for f in feats)  # tanh-bounded
    assert all(not f.requires_grad or f.grad_fn is not None for f in feats)
    out = d(img)
    assert out.shape == (2, 7, 64, 96)
    out.mean().backward()
    assert d.out.weight.grad is not None and d.backbone.stem[0].weight.grad is None
    # ConvNeXt-L layout
    with torch.device("meta"):
        n = sum(p.numel() for p in ConvNeXt().parameters())
    assert abs(n - 196.2e6) / 196.2e6 < 0.01, n  # timm convnext_large minus its 1.5M head


def _timm_keys(depths: tuple[int, ...], dims: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """timm convnext_* state-dict keys (conv_mlp=False), written out by hand."""
    k = {"stem.0.weight": (dims[0], 3, 4, 4), "stem.0.bias": (dims[0],),
         "stem.1.weight": (dims[0],), "stem.1.bias": (dims[0],),
         "head.norm.weight": (dims[-1],), "head.norm.bias": (dims[-1],),
         "head.fc.weight": (1000, dims[-1]), "head.fc.bias": (1000,)}
    for i, (depth, d) in enumerate(zip(depths, dims)):
        if i:
            k[f"stages.{i}.downsample.0.weight"] = (dims[i - 1],)
            k[f"stages.{i}.downsample.0.bias"] = (dims[i - 1],)
            k[f"stages.{i}.downsample.1.weight"] = (d, dims[i - 1], 2, 2)
            k[f"stages.{i}.downsample.1.bias"] = (d,)
        for j in range(depth):
            p = f"stages.{i}.blocks.{j}"
            k.update({f"{p}.gamma": (d,), f"{p}.conv_dw.weight": (d, 1, 7, 7), f"{p}.conv_dw.bias": (d,),
                      f"{p}.norm.weight": (d,), f"{p}.norm.bias": (d,),
                      f"{p}.mlp.fc1.weight": (4 * d, d), f"{p}.mlp.fc1.bias": (4 * d,),
                      f"{p}.mlp.fc2.weight": (d, 4 * d), f"{p}.mlp.fc2.bias": (d,)})
    return k


def test_timm_convnext_weights_load(tmp_path) -> None:
    depths, dims = TINY_D["depths"], TINY_D["dims"]
    state = {k: torch.randn(s) for k, s in _timm_keys(depths, dims).items()}
    torch.save(state, tmp_path / "convnext.pth")
    net = ConvNeXt(depths, dims)
    net.load_timm(tmp_path / "convnext.pth")
    assert torch.equal(net.stages[2].blocks[1].mlp.fc2.weight, state["stages.2.blocks.1.mlp.fc2.weight"])
    del state["stages.1.blocks.0.gamma"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatch, match=r"stages\.1\.blocks\.0\.gamma"):
        net.load_timm(tmp_path / "bad.pth")
