"""OASIS generator: paper size, shapes, 3D noise (broadcast and per class), official
checkpoint layout, and the official generator's image from the same weights and noise."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sdk.train.deploy.fold import export_ready
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
    model = _REGISTRY[name].build(**_REGISTRY[name].test_overrides)
    g = model.graphs()["model"]
    assert [(s.name, s.kind) for s in g.inputs] == [("label", "label"), ("codes", "codes")]
    assert g.inputs[1].shape == (None, classes, 64)
    assert g.inputs[1].attrs == {"distribution": "normal", "broadcast": True}
    model.noise_input = "latent"  # the graph of bundles before per-class noise
    old = model.graphs()["model"]
    assert [(s.name, s.kind, s.shape) for s in old.inputs][1] == ("z", "latent", (None, 64))


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


def _official_state(cfg: OASISConfig) -> dict[str, torch.Tensor]:
    """Weights in the official layout: a fresh network's, its batch-norm statistics
    calibrated on seeded batches (so the image is not saturated)."""
    from sdk.train.deploy.fold import calibrate_norm_stats

    torch.manual_seed(1)
    model = OASISModel(cfg)
    spec = model.graphs()["model"]
    calibrate_norm_stats(spec.module, lambda step: spec.examples(2, seed=step))
    state = model.netG.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == _official_keys(
        cfg.channels_G, cfg.num_classes, cfg.z_dim, cfg.spade_hidden)
    return state


def official_forward(state: dict[str, torch.Tensor], seg: torch.Tensor, z: torch.Tensor,
                     blocks: int = 6) -> torch.Tensor:
    """boschresearch/OASIS' ``OASIS_Generator.forward`` in eval mode, written out here as
    functions of its state dict (read from models/generator.py and models/norms.py): the
    noise broadcast and concatenated in front of the one-hot map, ``fc`` on that map
    resized (nearest) to the latent grid, six SPADE residual blocks with nearest x2
    upsampling between them, each SPADE reading the same concatenated map resized
    (nearest) to its input; spectral norm in eval mode divides by ``u . (W v)`` with the
    stored vectors; batch norm uses its running statistics (eps 1e-5)."""
    def weight(prefix: str) -> torch.Tensor:
        if prefix + ".weight_orig" in state:
            w, u, v = (state[f"{prefix}.weight_{k}"] for k in ("orig", "u", "v"))
            return w / torch.dot(u, w.flatten(1) @ v)
        return state[prefix + ".weight"]

    def conv(prefix: str, x: torch.Tensor, pad: int) -> torch.Tensor:
        return F.conv2d(x, weight(prefix), state.get(prefix + ".bias"), padding=pad)

    def spade(prefix: str, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = F.batch_norm(x, state[prefix + ".first_norm.running_mean"],
                                  state[prefix + ".first_norm.running_var"], training=False, eps=1e-5)
        actv = F.relu(conv(prefix + ".mlp_shared.0", F.interpolate(segmap, size=x.shape[2:], mode="nearest"), 1))
        return normalized * (1 + conv(prefix + ".mlp_gamma", actv, 1)) + conv(prefix + ".mlp_beta", actv, 1)

    n, _, h, w = seg.shape
    seg = torch.cat((z.view(n, -1, 1, 1).expand(n, z.shape[1], h, w), seg), 1)
    x = conv("fc", F.interpolate(seg, size=(h // 2 ** (blocks - 1), w // 2 ** (blocks - 1))), 1)
    for i in range(blocks):
        p = f"body.{i}"
        x_s = conv(p + ".conv_s", spade(p + ".norm_s", x, seg), 0) if p + ".conv_s.weight_orig" in state else x
        dx = conv(p + ".conv_0", F.leaky_relu(spade(p + ".norm_0", x, seg), 0.2), 1)
        x = x_s + conv(p + ".conv_1", F.leaky_relu(spade(p + ".norm_1", dx, seg), 0.2), 1)
        if i < blocks - 1:
            x = F.interpolate(x, scale_factor=2)
    return torch.tanh(conv("conv_img", F.leaky_relu(x, 0.2), 1))


def test_official_generator_image_with_the_same_weights_and_noise(tmp_path) -> None:
    """Same weights, same broadcast noise, same image: our network as trained (one-hot, one
    z), the deployed graph (class ids, the noise given to every class) and the official
    generator written out above. Per-class codes that are all equal are the broadcast z
    value for value, so the deployed image is bit-identical to the one-z image."""
    classes = 7
    cfg = OASISConfig(num_classes=classes, height=64, width=64, **SMALL)
    model = OASISModel(cfg)
    state = _official_state(cfg)
    torch.save(state, tmp_path / "best_EMA.pth")
    load_official(model, {"EMA": tmp_path / "best_EMA.pth"})  # key for key, strict
    graph = export_ready(model).graphs()["model"].module
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, classes, (2, 4, 4), generator=g).repeat_interleave(16, 1).repeat_interleave(16, 2)
    seg = F.one_hot(ids, classes).permute(0, 3, 1, 2).float()
    z = torch.randn(2, 64, generator=g)
    codes = z[:, None].expand(2, classes, 64).contiguous()
    with torch.no_grad():
        official = official_forward(state, seg, z)
        trained = export_ready(model)(seg, z)
        deployed = graph(ids.int(), codes)
        one_z = graph(ids.int(), z)
    assert 0.05 < official.std() and official.abs().max() < 0.999  # an image, not saturated
    torch.testing.assert_close(trained, official, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deployed, official, rtol=1e-5, atol=1e-6)
    assert torch.equal(deployed, one_z)


def test_per_class_noise_reaches_each_pixel_of_its_class() -> None:
    """Every layer reads cat(z3d, label) where z3d at a pixel is its class's code: at the
    first layer (fc, on the latent grid) and as the full-size map (the last SPADE)."""
    classes = 5
    model = export_ready(OASISModel(OASISConfig(num_classes=classes, height=64, width=128, **SMALL)))
    graph = model.graphs()["model"].module
    ids = torch.randint(0, classes, (2, 4, 8)).repeat_interleave(16, 1).repeat_interleave(16, 2).int()
    codes = torch.randn(2, classes, 64)
    seen: dict[str, torch.Tensor] = {}
    model.netG.fc.register_forward_pre_hook(lambda m, i: seen.setdefault("fc", i[0]))
    last = model.netG.body[5].norm_1.mlp_shared[0]
    last.register_forward_pre_hook(lambda m, i: seen.setdefault("last", i[0]))
    with torch.no_grad():
        out = graph(ids, codes)
        one_hot = model(F.one_hot(ids.long(), classes).permute(0, 3, 1, 2).float(), codes)
    torch.testing.assert_close(out, one_hot, rtol=1e-5, atol=1e-6)  # class ids and one-hot agree
    for key, grid in (("fc", ids[:, ::32, ::32]), ("last", ids)):
        x = seen[key]
        want = torch.stack([codes[n][grid[n].long()].permute(2, 0, 1) for n in range(2)])
        assert torch.equal(x[:, :64], want), key
        assert torch.equal(x[:, 64:].argmax(1), grid.long()), key
    with pytest.raises(ValueError, match=r"per-class noise must be \(N, 5, 64\)"):
        graph(ids, torch.randn(2, 4, 64))
