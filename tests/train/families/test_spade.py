"""SPADE: paper parameter counts, official checkpoint key names, shapes."""
from __future__ import annotations

import pytest
import torch

from sdk.train.models import create_model, get_preset
from sdk.train.models.official import CheckpointMismatch, load_official

SMALL = {"ngf": 8, "spade_hidden": 16, "height": 128, "width": 256}


def _block_keys(prefix: str, shortcut: bool) -> list[str]:
    """Key names of one SPADEResnetBlock in NVlabs/SPADE's latest_net_G.pth (spectral + syncbatch)."""
    keys = []
    for conv in ("conv_0", "conv_1") + (("conv_s",) if shortcut else ()):
        keys += [f"{prefix}.{conv}.weight_orig", f"{prefix}.{conv}.weight_u", f"{prefix}.{conv}.weight_v"]
        if conv != "conv_s":
            keys.append(f"{prefix}.{conv}.bias")
    for norm in ("norm_0", "norm_1") + (("norm_s",) if shortcut else ()):
        keys += [f"{prefix}.{norm}.param_free_norm.{b}" for b in ("running_mean", "running_var", "num_batches_tracked")]
        keys += [f"{prefix}.{norm}.{m}.{p}" for m in ("mlp_shared.0", "mlp_gamma", "mlp_beta") for p in ("weight", "bias")]
    return keys


def official_generator_keys() -> set[str]:
    keys = ["fc.weight", "fc.bias", "conv_img.weight", "conv_img.bias"]
    for name in ("head_0", "G_middle_0", "G_middle_1"):
        keys += _block_keys(name, shortcut=False)
    for name in ("up_0", "up_1", "up_2", "up_3"):
        keys += _block_keys(name, shortcut=True)
    return set(keys)


def official_encoder_keys() -> set[str]:
    keys = [f"layer{i}.0.weight_{s}" for i in range(1, 7) for s in ("orig", "u", "v")]
    return set(keys + ["fc_mu.weight", "fc_mu.bias", "fc_var.weight", "fc_var.bias"])


@pytest.mark.parametrize("name", ["spade-ade20k", "spade-cityscapes", "spade-coco"])
def test_paper_parameter_counts(name):
    preset = get_preset(name)
    with torch.device("meta"):
        model = preset.build()
    params = sum(p.numel() for p in model.parameters())
    if preset.paper_params:
        assert abs(params - preset.paper_params) / preset.paper_params < 0.02
    # the label-only generator has no encoder and no z path, as the released checkpoints
    assert model.netE is None and isinstance(model.netG.fc, torch.nn.Conv2d)


def test_official_key_names_load_strictly(tmp_path):
    model = create_model("spade-cityscapes-vae", **SMALL)
    own_g, own_e = model.netG.state_dict(), model.netE.state_dict()
    expected_g = official_generator_keys()
    assert set(own_g) == expected_g and set(own_e) == official_encoder_keys()
    torch.manual_seed(3)
    state_g = {k: torch.randn_like(own_g[k].float()).to(own_g[k].dtype) for k in expected_g}
    # DataParallel-saved files carry a "module." prefix; it is stripped on load
    torch.save({f"module.{k}": v for k, v in state_g.items()}, tmp_path / "latest_net_G.pth")
    torch.save({k: torch.randn_like(v.float()).to(v.dtype) for k, v in own_e.items()}, tmp_path / "latest_net_E.pth")
    load_official(model, {"net_G": tmp_path / "latest_net_G.pth", "net_E": tmp_path / "latest_net_E.pth"})
    torch.testing.assert_close(model.netG.state_dict()["up_0.conv_s.weight_orig"], state_g["up_0.conv_s.weight_orig"])


def test_wrong_checkpoint_is_refused_with_every_key_listed(tmp_path):
    model = create_model("spade-cityscapes", **SMALL)
    state = {k: v.clone() for k, v in model.netG.state_dict().items()}
    state["head_0.conv_0.weight"] = state.pop("head_0.conv_0.weight_orig")  # a non-spectral checkpoint
    state["fc.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointMismatch) as err:
        load_official(model, {"net_G": tmp_path / "latest_net_G.pth"})
    msg = str(err.value)
    assert "1 missing keys: head_0.conv_0.weight_orig" in msg
    assert "1 unexpected keys: head_0.conv_0.weight" in msg
    assert "fc.weight: checkpoint (3, 3)" in msg


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointMismatch, match="weights-only"):
        load_official(create_model("spade-cityscapes", **SMALL), {"net_G": tmp_path / "latest_net_G.pth"})


def test_bundle_from_official_checkpoint(tmp_path):
    from sdk import Synthesizer
    from sdk.export.bundle import build_bundle

    model = create_model("spade-ade20k", **SMALL)
    torch.save(model.netG.state_dict(), tmp_path / "latest_net_G.pth")
    manifest = build_bundle("spade-ade20k", tmp_path / "b", checkpoints=[tmp_path / "latest_net_G.pth"],
                            overrides=SMALL)
    assert manifest.weights["norm_stats"] == "learned"
    assert max(manifest.graphs["model"].parity.figures["onnxruntime_cpu"].values()) <= 1e-4
    s = Synthesizer.from_pretrained(tmp_path / "b", backend="torch")
    import numpy as np
    assert s(np.zeros((128, 256), np.int64)).size == (256, 128)
