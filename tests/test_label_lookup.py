"""Label convolutions exported as table lookups: same numbers as the convolution."""
from __future__ import annotations

import copy
import json

import onnx
import pytest
import torch
import torch.nn.functional as F

from export.fold import export_ready, relative_l2
from export.label_lookup import OneHotLookupConv, use_label_lookup
from train.models import create_model, get_preset
from train.models.layers.onehot import mark_one_hot_input, one_hot_channels


def one_hot_input(n: int, h: int, w: int, before: int, classes: int, after: int, seed: int = 0) -> torch.Tensor:
    """Dense channels, then a one-hot block where about 1/(classes+1) of the pixels are all zero, then dense."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, classes + 1, (n, h, w), generator=g)
    one_hot = F.one_hot(ids, classes + 1)[..., :classes].permute(0, 3, 1, 2).float()
    return torch.cat([torch.randn(n, before, h, w, generator=g), one_hot,
                      torch.randn(n, after, h, w, generator=g)], 1)


@pytest.mark.parametrize("kernel,stride,padding,bias,before,after", [
    (3, 1, 1, True, 0, 0), (3, 1, 1, True, 0, 1), (1, 1, 0, False, 4, 0),
    (7, 1, 0, True, 0, 2), (3, 2, 1, True, 3, 3), (4, 2, 1, False, 0, 0), (3, 1, 2, True, 2, 0)])
def test_lookup_equals_convolution(kernel, stride, padding, bias, before, after):
    torch.manual_seed(0)
    classes = 11
    conv = torch.nn.Conv2d(before + classes + after, 6, kernel, stride, padding, bias=bias)
    x = one_hot_input(2, 13, 17, before, classes, after)
    lookup = OneHotLookupConv(conv, before, before + classes)
    with torch.no_grad():
        ref, got = conv(x), lookup(x)
    assert got.shape == ref.shape
    assert relative_l2(got, ref) < 1e-6


def test_unsupported_convolutions_are_refused():
    with pytest.raises(ValueError, match="groups=1"):
        OneHotLookupConv(torch.nn.Conv2d(8, 8, 3, padding=1, groups=2), 0, 8)
    with pytest.raises(ValueError, match="zero padding"):
        OneHotLookupConv(torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), 0, 8)
    with pytest.raises(ValueError, match="do not fit"):
        mark_one_hot_input(torch.nn.Conv2d(8, 8, 3), 4, 9)
    with pytest.raises(TypeError):
        mark_one_hot_input(torch.nn.Linear(8, 8), 0, 8)


@pytest.mark.parametrize("name,expected", [("spade-ade20k", 19), ("oasis-ade20k", 17), ("dpsims-ade20k", 2),
                                           ("spade-cityscapes", 0)])
def test_presets_mark_their_label_convolutions(name, expected):
    """Deployed with lookups, each family computes what its convolutions compute;
    Cityscapes (35 classes) stays below the lookup threshold."""
    torch.manual_seed(0)
    model = create_model(name, **get_preset(name).test_overrides).eval()
    keys = set(model.state_dict())
    ready = export_ready(model)
    deployed = copy.deepcopy(ready)
    assert use_label_lookup(deployed) == expected
    assert set(model.state_dict()) == keys  # the mark changes no checkpoint key
    spec, dspec = ready.graphs()["model"], deployed.graphs()["model"]
    examples = spec.examples(2, seed=3)
    with torch.no_grad():
        ref, got = spec.module(*examples), dspec.module(*examples)
    assert relative_l2(got, ref) < 1e-5


def test_marks_sit_on_the_label_channels():
    """OASIS conditions on cat(noise, label): the marked span starts after the noise."""
    cfg = get_preset("oasis-ade20k").test_overrides
    model = create_model("oasis-ade20k", **cfg)
    spans = {one_hot_channels(m) for m in model.modules() if one_hot_channels(m)}
    assert spans == {(model.config.z_dim, model.config.z_dim + model.config.num_classes)}


def test_bundle_exports_lookups_and_keeps_parity(small_bundle):
    path = small_bundle("spade-ade20k")
    manifest = json.loads((path / "manifest.json").read_text())
    graph = manifest["graphs"]["model"]
    assert manifest["export"]["label_lookup"]["enabled"] and graph["label_lookups"] == 19
    assert max(graph["parity"]["onnxruntime_cpu"].values()) <= 1e-4  # against the convolution network
    ops = [n.op_type for n in onnx.load(str(path / graph["file"])).graph.node]
    assert ops.count("Gather") >= 9 * 19
    # OASIS reads cat(noise, label): its lookups carry a convolution over the noise channels
    oasis = json.loads((small_bundle("oasis-ade20k") / "manifest.json").read_text())["graphs"]["model"]
    assert oasis["label_lookups"] == 17 and max(oasis["parity"]["onnxruntime_cpu"].values()) <= 1e-4
