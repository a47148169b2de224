"""One full-size preset through the README's path: export CLI -> bundle -> sdk CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run


@pytest.mark.slow
def test_spade_cityscapes_full_size(tmp_path):
    out = tmp_path / "b"
    r = run("-m", "export", "bundle", "--model", "spade-cityscapes", "--seed", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resolution"] == [256, 512]
    assert 0.98 * 93.0e6 < manifest["parameters"] < 1.02 * 93.1e6
    assert max(manifest["graphs"]["model"]["parity"]["onnxruntime_cpu"].values()) <= 1e-4
    label = ROOT / "samples" / "street_1_label.png"
    for name in ("a.png", "b.png"):
        r = run("-m", "sdk", "synthesize", "--bundle", str(out), "--label", str(label), "--seed", "0",
                "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    a, b = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert a.size == (512, 256) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_progan_256_full_size_samples(tmp_path):
    from sdk import Synthesizer
    from sdk.export.bundle import build_bundle

    manifest = build_bundle("progan-256", tmp_path / "p", seed=0)
    assert max(manifest.graphs["model"].parity.figures["onnxruntime_cpu"].values()) <= 1e-4
    s = Synthesizer.from_pretrained(tmp_path / "p", backend="onnxruntime")
    a, b = s(seed=0, n=2)
    assert a.size == b.size == (256, 256)
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(np.asarray(s(seed=0, n=2)[1]), np.asarray(b))
