"""OASIS generator: paper size, shapes, 3D noise, official checkpoint layout."""
from __future__ import annotations

import pytest
import torch

from sdk.train.families.oasis.network import OASISConfig, OASISModel
from sdk.train.models.official import CheckpointMismatch, load_official
from sdk.train.models.registry import _REGISTRY

SMALL = {"channels_G": 4, "spade_hidden": 8}


def _count(cfg: OASISConfig) -> int:
    with torch.device("meta"):  # no weights are materialised
        return sum(p.numel() for p in OASISModel(cfg).parameters())


def test_ade20k_param_count_matches_paper() -> None:
    preset = _REGISTRY["oasis-ade20k"]
    n = _count(preset.config)
    assert preset.paper_params == 74.3e6
    assert abs(n - preset.paper_params) / preset.paper_params < 0.02, n


@pytest.mark.parametrize("name,classes,size", [
    ("oasis-ade20k", 151, (256, 256)), ("oasis-cityscapes", 35, (256, 512)), ("oasis-coco", 183, (256, 256))])
def test_presets(name: str, classes: int, size: tuple[int, int]) -> None:
    cfg = _REGISTRY[name].config
    assert (cfg.num_classes, cfg.height, cfg.width, cfg.z_dim) == (classes, *size, 64)
    g = _REGISTRY[name].build(**_REGISTRY[name].test_overrides).graphs()["model"]
    assert [s.name for s in g.inputs] == ["label", "z"]
    assert g.inputs[1].shape == (None, 64) and g.inputs[1].attrs == {"distribution": "normal"}


def test_forward_shape_and_noise_in_front_of_label() -> None:
    model = OASISModel(OASISConfig(num_classes=5, height=64, width=128, **SMALL)).eval()
    seg = torch.nn.functional.one_hot(torch.randint(0, 5, (2, 64, 128)), 5).permute(0, 3, 1, 2).float()
    z = torch.randn(2, 64)
    seen = {}
    model.netG.fc.register_forward_pre_hook(lambda m, i: None if "x" in seen else seen.update(x=i[0]))
    with torch.no_grad():
        out = model(seg, z)
        other = model(seg, torch.randn(2, 64))
    assert out.shape == (2, 3, 64, 128) and out.abs().max() <= 1
    x = seen["x"]  # fc input: cat(z, label) at 2x4 (64/32 x 128/32)
    assert x.shape == (2, 69, 2, 4)
    assert torch.equal(x[:, :64], z[:, :, None, None].expand(2, 64, 2, 4))
    assert not torch.allclose(out, other)


def _official_keys(c: int, semantic_nc: int, z_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of boschresearch/OASIS' OASIS_Generator (read from its
    models/generator.py and models/norms.py), written out here independently of our model."""
    widths = [16 * c, 16 * c, 16 * c, 8 * c, 4 * c, 2 * c, c]
    nc = semantic_nc + z_dim
    keys: dict[str, tuple[int, ...]] = {
        "fc.weight": (16 * c, nc, 3, 3), "fc.bias": (16 * c,),
        "conv_img.weight": (3, c, 3, 3), "conv_img.bias": (3,)}

    def sn_conv(prefix: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
        keys[f"{prefix}.weight_orig"] = (cout, cin, k, k)
        keys[f"{prefix}.weight_u"] = (cout,)
        keys[f"{prefix}.weight_v"] = (cin * k * k,)
        if bias:
            keys[f"{prefix}.bias"] = (cout,)

    def spade(prefix: str, norm_nc: int) -> None:
        keys[f"{prefix}.first_norm.running_mean"] = (norm_nc,)
        keys[f"{prefix}.first_norm.running_var"] = (norm_nc,)
        keys[f"{prefix}.first_norm.num_batches_tracked"] = ()
        keys[f"{prefix}.mlp_shared.0.weight"] = (hidden, nc, 3, 3)
        keys[f"{prefix}.mlp_shared.0.bias"] = (hidden,)
        for g in ("mlp_gamma", "mlp_beta"):
            keys[f"{prefix}.{g}.weight"] = (norm_nc, hidden, 3, 3)
            keys[f"{prefix}.{g}.bias"] = (norm_nc,)

    for i in range(6):
        fin, fout = widths[i], widths[i + 1]
        mid = min(fin, fout)
        sn_conv(f"body.{i}.conv_0", mid, fin, 3)
        sn_conv(f"body.{i}.conv_1", fout, mid, 3)
        spade(f"body.{i}.norm_0", fin)
        spade(f"body.{i}.norm_1", mid)
        if fin != fout:
            sn_conv(f"body.{i}.conv_s", fout, fin, 1, bias=False)
            spade(f"body.{i}.norm_s", fin)
    return keys


def _synthetic(keys: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(3) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
            for k, s in keys.items()}


def test_official_checkpoint_loads_strictly(tmp_path) -> None:
    model = OASISModel(OASISConfig(num_classes=7, height=64, width=64, **SMALL))
    state = _synthetic(_official_keys(4, 7, 64, 8))
    torch.save(state, tmp_path / "best_EMA.pth")
    load_official(model, {"EMA": tmp_path / "best_EMA.pth"})
    assert torch.equal(model.netG.body[3].norm_s.first_norm.running_var,
                       state["body.3.norm_s.first_norm.running_var"])
    assert torch.equal(model.netG.fc.weight, state["fc.weight"])


def test_wrong_checkpoint_is_refused_listing_keys(tmp_path) -> None:
    model = OASISModel(OASISConfig(num_classes=7, height=64, width=64, **SMALL))
    state = _synthetic(_official_keys(4, 7, 64, 8))
    # SPADE's naming instead of OASIS' for one norm, and a checkpoint for another class count
    state["body.0.norm_0.param_free_norm.running_mean"] = state.pop("body.0.norm_0.first_norm.running_mean")
    state["fc.weight"] = torch.randn(64, 64 + 9, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatch) as err:
        load_official(model, {"EMA": tmp_path / "bad.pth"})
    msg = str(err.value)
    assert "body.0.norm_0.first_norm.running_mean" in msg
    assert "body.0.norm_0.param_free_norm.running_mean" in msg
    assert "fc.weight" in msg
