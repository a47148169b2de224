"""Every registered preset: export -> onnx.checker -> parity -> bundle -> SDK, at CI size.

Parametrized over the registry, so a new preset is covered with no new test code.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from sdk import Synthesizer
from sdk.manifest import TensorSpec
from sdk.train.models import get_preset, list_models
from tests.conftest import random_ids

PRESETS = list_models()


def example_feeds(inputs: list[TensorSpec], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs as the SDK feeds them: int32 class ids, uint8 edges, images in [-1, 1], noise."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [batch if d is None else d for d in spec.shape]
        if spec.kind == "label":
            assert spec.dtype == "int32" and len(shape) == 3
            classes = spec.attrs["num_classes"]
            x = np.stack([random_ids(tuple(shape[1:]), classes, seed + i) for i in range(batch)]).astype(np.int32)
        elif spec.kind == "instance_edge":
            assert spec.dtype == "uint8" and len(shape) == 3
            x = (rng.random(shape) > 0.9).astype(np.uint8)
        elif spec.kind == "image":
            x = rng.uniform(-1, 1, shape).astype(np.float32)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        feeds[spec.name] = x
    return feeds


@pytest.mark.parametrize("name", PRESETS)
def test_preset_end_to_end(name, small_bundle):
    """One test per preset, so parallel workers export each preset once."""
    path = small_bundle(name)
    check_export(path, name)
    check_sdk(path)


def check_export(path, name):
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["name"] == name and manifest["family"] == get_preset(name).family
    for gname, g in manifest["graphs"].items():
        parity = g["parity"]["onnxruntime_cpu"]
        assert set(parity) == {"batch_1", "batch_2", "blocks_batch_1", "blocks_batch_2"}  # random + real-like
        assert max(parity.values()) <= 1e-4, (gname, parity)  # against the one-hot network
        assert g["parity"]["u8_max_levels"] <= 1
        labels = [i for i in g["inputs"] if i["kind"] == "label"]
        assert all(i["dtype"] == "int32" and len(i["shape"]) == 3 for i in labels)
        assert (g["label_path"] is not None) == bool(labels)
        model = onnx.load(str(path / g["file"]))
        onnx.checker.check_model(model)
        for value in model.graph.input:
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch", value.name
    # a batch size the export never saw runs and gives one image per item
    s = Synthesizer.from_pretrained(path, label_format="ids")
    out = s.runner().run(example_feeds(s.bundle.graph("model").inputs, batch=3))
    assert out["image"].shape[0] == 3 and np.isfinite(out["image"]).all()
    # the graph's 8-bit image is its float image rounded (within one level at boundaries)
    h, w = manifest["resolution"]
    assert out["image_u8"].shape == (3, h, w, 3) and out["image_u8"].dtype == np.uint8
    expected = np.clip((out["image"].transpose(0, 2, 3, 1) + 1) * 127.5 + 0.5, 0, 255).astype(np.int16)
    assert np.abs(out["image_u8"].astype(np.int16) - expected).max() <= 1
    # parity on a saturated (all +-1) output would measure nothing: random-weight bundles
    # are calibrated so that most pixels stay inside the range
    assert (np.abs(out["image"]) > 0.99).mean() < 0.5


def check_sdk(path):
    s = Synthesizer.from_pretrained(path, backend="onnxruntime", label_format="ids")
    h, w = s.bundle.resolution
    if s.bundle.task != "image2image":  # image-to-image bundles: tests/sdk/test_translate.py
        label = random_ids((h, w), s.bundle.num_classes) if s.bundle.task == "semantic" else None
        kwargs = {"label": label} if label is not None else {}
        a = np.asarray(s(**kwargs, seed=7))
        b = np.asarray(s(**kwargs, seed=7))
        assert a.shape == (h, w, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)  # same seed, same image
        if s.latents.kind is not None:  # a latent or per-class codes
            c = np.asarray(s(**kwargs, seed=8))
            assert not np.array_equal(a, c), "another seed should give another image"
    # the torch backend rebuilds the network from config + weights and agrees with onnxruntime
    t = Synthesizer.from_pretrained(path, backend="torch", label_format="ids")
    feeds = example_feeds(s.bundle.graph("model").inputs, batch=2, seed=1)
    o1 = s.runner().run(feeds)["image"]
    o2 = t.runner().run(feeds)["image"]
    assert np.linalg.norm(o1 - o2) / np.linalg.norm(o2) < 1e-4
