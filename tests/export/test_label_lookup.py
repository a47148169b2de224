"""Label convolutions exported as table lookups: same numbers as the convolution."""
from __future__ import annotations

import copy
import json
from unittest import mock

import onnx
import pytest
import torch
import torch.nn.functional as F

from sdk.export.label_lookup import OneHotLookupConv, use_label_lookup
from sdk.export.parity import relative_l2
from sdk.train.deploy.fold import calibrate_norm_stats, export_ready
from sdk.train.models import create_model, get_preset
from sdk.train.models.layers.label_map import LabelMap, gather_by_class, read_label, resize_label
from sdk.train.models.layers.onehot import mark_one_hot_input, one_hot_channels


def label_map(n: int, h: int, w: int, before: int, classes: int, after: int, seed: int = 0) -> LabelMap:
    """Class ids with dense channels in front (spatially constant when ``before`` is odd,
    as OASIS' noise) and behind."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, classes, (n, h, w), generator=g, dtype=torch.int32)
    lead = torch.randn(n, before, *((1, 1) if before % 2 else (h, w)), generator=g) if before else None
    tail = torch.randn(n, after, h, w, generator=g) if after else None
    return LabelMap(ids, classes, before=lead, after=tail)


@pytest.mark.parametrize("kernel,stride,padding,bias,before,after", [
    (3, 1, 1, True, 0, 0), (3, 1, 1, True, 0, 1), (1, 1, 0, False, 4, 0),
    (7, 1, 0, True, 0, 2), (3, 2, 1, True, 3, 3), (4, 2, 1, False, 0, 0), (3, 1, 2, True, 2, 0)])
def test_lookup_equals_convolution(kernel, stride, padding, bias, before, after):
    torch.manual_seed(0)
    classes = 11
    conv = torch.nn.Conv2d(before + classes + after, 6, kernel, stride, padding, bias=bias)
    seg = label_map(2, 13, 17, before, classes, after)
    lookup = OneHotLookupConv(conv, before, before + classes)
    with torch.no_grad():
        ref, got = conv(seg.dense()), read_label(lookup, seg)
    assert got.shape == ref.shape
    assert relative_l2(got, ref) < 1e-6


def test_label_map_stands_for_the_one_hot_tensor():
    """Resizing the ids and one-hot encoding them gives what resizing the one-hot gives."""
    seg = label_map(2, 32, 48, 3, 7, 1, seed=1)
    dense = seg.dense()
    assert dense.shape == seg.shape == (2, 3 + 7 + 1, 32, 48) and seg.span == (3, 10)
    assert torch.equal(dense[:, 3:10].argmax(1).int(), seg.ids) and torch.all(dense[:, 3:10].sum(1) == 1)
    for size in ((16, 24), (8, 8), (5, 7), (64, 96)):
        expected = F.interpolate(dense, size=size, mode="nearest")
        assert torch.equal(seg.at(size).dense(), expected), size
        assert torch.equal(resize_label(dense, size), expected)
    assert seg.at((16, 24)) is seg.at((16, 24))  # memoised: one resize per resolution
    with pytest.raises(TypeError, match="reads class ids"):
        OneHotLookupConv(torch.nn.Conv2d(11, 4, 3, padding=1), 0, 11)(dense)


def per_class_map(n: int, h: int, w: int, before: int, classes: int, seed: int = 0) -> LabelMap:
    """Class ids with ``before`` channels given per class (OASIS' noise per class)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, classes, (n, h, w), generator=g, dtype=torch.int32)
    return LabelMap(ids, classes, before_by_class=torch.randn(n, classes, before, generator=g))


def test_per_class_channels_stand_for_their_full_size_map():
    """Channels given per class are, at every size, the full-size gathered map resized
    (nearest): what the one-hot network reads from cat(z3d, one_hot)."""
    seg = per_class_map(2, 32, 48, 5, 7)
    table = seg.before_by_class
    z3d = torch.stack([table[i][seg.ids[i].long()].permute(2, 0, 1) for i in range(2)])
    dense = seg.dense()
    assert seg.span == (5, 12) and seg.shape == dense.shape == (2, 12, 32, 48)
    assert torch.equal(dense, torch.cat([z3d, F.one_hot(seg.ids.long(), 7).permute(0, 3, 1, 2).float()], 1))
    for size in ((16, 24), (8, 8), (5, 7), (64, 96)):
        assert torch.equal(seg.at(size).dense(), F.interpolate(dense, size=size, mode="nearest")), size
    # the exported form of the gather (rows, then one transpose) copies the same values
    with mock.patch("torch.onnx.is_in_onnx_export", return_value=True):
        assert torch.equal(gather_by_class(seg.ids, table), z3d)
    assert torch.equal(gather_by_class(seg.ids, table), z3d) and gather_by_class(seg.ids, table).is_contiguous()
    conv = torch.nn.Conv2d(12, 6, 3, padding=1)
    with torch.no_grad():  # the lookup reads the per-class channels through its dense part
        assert relative_l2(read_label(OneHotLookupConv(conv, 5, 12), seg), conv(dense)) < 1e-6
    with pytest.raises(ValueError, match=r"before_by_class must be \(N, 7, B\)"):
        LabelMap(seg.ids, 7, before_by_class=torch.zeros(2, 6, 5))


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
    model = create_model(name, **get_preset(name).test_overrides)
    for graph in model.graphs().values():  # an uncalibrated random net saturates: nothing to compare
        calibrate_norm_stats(graph.module, lambda step, graph=graph: graph.examples(4, seed=10_000 + step))
    model.eval()
    keys = set(model.state_dict())
    ready = export_ready(model)
    deployed = copy.deepcopy(ready)
    assert use_label_lookup(deployed) == expected
    assert set(model.state_dict()) == keys  # the mark changes no checkpoint key
    spec, dspec = ready.graphs()["model"], deployed.graphs()["model"]
    examples = spec.examples(2, seed=3)  # class ids
    with torch.no_grad():
        ref, got = spec.module(*spec.as_one_hot(examples)), dspec.module(*examples)
    assert (ref.abs() > 0.99).float().mean() < 0.5
    assert relative_l2(got, ref) < 1e-5  # (may be exactly 0: the conv adds the same 9 products)


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
