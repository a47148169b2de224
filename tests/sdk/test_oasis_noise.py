"""OASIS bundles take their 3D noise per class: with one code for every class the image
is, to the bit, the image of a bundle from before (one ``z``, broadcast in the graph), and
such an old bundle still runs, on onnxruntime and torch, while its per-class calls name
the command that re-exports it.

The old bundle is exported here from the same preset and seed with the graph of before
(``OASISModel.noise_input = "latent"``); the weights are the same file, byte for byte.
"""
from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sdk import SDKError, Synthesizer
from sdk.latents import VectorLatent
from sdk.train.families.oasis.network import OASISModel
from sdk.train.models import get_preset
from tests.conftest import LOOKUP_BUNDLES, random_ids

NAME = "oasis-ade20k"


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    from sdk.export.bundle import build_bundle

    out = tmp_path_factory.mktemp("old-oasis") / NAME
    with mock.patch.object(OASISModel, "noise_input", "latent"):
        build_bundle(NAME, out, overrides=get_preset(NAME).test_overrides, seed=0, label_lookup=NAME in LOOKUP_BUNDLES)
    return out


@pytest.fixture(scope="module")
def new(small_bundle):
    return small_bundle(NAME)


def _sha(path):
    return json.loads((path / "manifest.json").read_text())["files"]["weights.safetensors"]["sha256"]


def test_one_code_for_every_class_is_the_broadcast_z_image(old, new):
    """FP32 onnxruntime, the same inputs: 0 levels apart (the float images are equal too)."""
    assert _sha(old) == _sha(new)
    a = Synthesizer.from_pretrained(old, backend="onnxruntime", label_format="ids")
    b = Synthesizer.from_pretrained(new, backend="onnxruntime", label_format="ids")
    assert isinstance(a.latents, VectorLatent) and b.has_codes
    assert [i.name for i in b.bundle.graph("model").inputs] == ["label", "codes"]
    h, w = a.bundle.resolution
    labels = [random_ids((h, w), a.bundle.num_classes, seed) for seed in range(2)]
    for seed in (0, 5):  # a seed draws the same vector, now given to every class
        assert np.array_equal(a(labels, seed=seed, output="uint8"), b(labels, seed=seed, output="uint8"))
    z = np.random.default_rng(9).standard_normal((2, 64)).astype(np.float32)
    codes = np.repeat(z[:, None], a.bundle.num_classes, axis=1)
    assert np.array_equal(a(labels, z=z, output="float"), b(labels, codes=codes, output="float"))
    assert np.array_equal(a(labels, z=z, output="uint8"), b(labels, z=z, output="uint8"))


def test_old_bundle_runs_and_names_the_re_export(old, new, tmp_path):
    a = Synthesizer.from_pretrained(old, backend="onnxruntime", label_format="ids")
    label = random_ids(a.bundle.resolution, a.bundle.num_classes, 3)
    image = np.asarray(a(label, seed=2), np.int16)
    # the torch backend rebuilds the graph the bundle was exported with (one z)
    t = Synthesizer.from_pretrained(old, backend="torch", label_format="ids")
    assert np.abs(np.asarray(t(label, seed=2), np.int16) - image).max() <= 1
    command = f"python -m export bundle --model {NAME} --checkpoint {old / 'weights.safetensors'} --out NEW_FOLDER"
    assert a.no_codes_reason.endswith(command) and "\n" not in a.no_codes_reason
    for call in (lambda: a.resample(label, [1], seed=1), lambda: a.sample_codes(0)):  # a LabelToImage: not there
        with pytest.raises(AttributeError, match="was exported before OASIS took its noise per class"):
            call()
    with pytest.raises(SDKError, match="was exported before OASIS took its noise per class"):
        a.interpolate(label, seed_a=0, seed_b=1, classes=[1])
    # that command (torch-only here, for time) gives a bundle with per-class noise, same weights
    from sdk.export.bundle import build_bundle

    build_bundle(NAME, tmp_path / "re", checkpoints=[old / "weights.safetensors"], onnx=False,
                 overrides=get_preset(NAME).test_overrides)
    r = Synthesizer.from_pretrained(tmp_path / "re", backend="torch", label_format="ids")
    mine, theirs = (load_file(str(p / "weights.safetensors")) for p in (tmp_path / "re", old))
    # (the old bundle's file also holds its ONNX graph's tables, under onnx/)
    assert r.has_codes and mine.keys() == {k for k in theirs if not k.startswith("onnx/")}
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert np.abs(np.asarray(r(label, seed=2), np.int16) - image).max() <= 1
    assert np.abs(np.asarray(r.resample(label, [int(label[0, 0])], seed=4), np.int16) - image).max() > 8
