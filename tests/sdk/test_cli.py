"""The CLIs end to end: outputs on success, exit status 2 and one clear line on bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import random_ids, run


@pytest.fixture(scope="module")
def bundle(small_bundle):
    return small_bundle("spade-cityscapes-vae")


def test_synthesize_and_info(bundle, tmp_path):
    from sdk import Bundle

    h, w = Bundle(bundle).resolution
    Image.fromarray(random_ids((h, w), 34).astype(np.uint8), "L").save(tmp_path / "label.png")  # labelIds 0..33
    r = run("-m", "sdk", "synthesize", "--bundle", str(bundle), "--label", str(tmp_path / "label.png"),
            "--seed", "3", "--n", "2", "--out", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    a = Image.open(tmp_path / "out_0.png")
    assert a.size == (w, h) and a.mode == "RGB"
    r = run("-m", "sdk", "info", str(bundle))
    assert r.returncode == 0 and "parity" in r.stdout and "sha256 of every file matches" in r.stdout


@pytest.mark.parametrize("make_bad, message", [
    (lambda p, h, w: Image.fromarray(np.full((h, w), 99, np.uint8), "L").save(p), "label holds 99 at (0, 0), which is not a Cityscapes file value"),
    (lambda p, h, w: Image.fromarray(np.zeros((h // 2, w), np.uint8), "L").save(p), "this model takes"),
    (lambda p, h, w: p.write_bytes(b"not a png"), "cannot read label"),
])
def test_bad_label_exits_2_without_traceback(bundle, tmp_path, make_bad, message):
    from sdk import Bundle

    h, w = Bundle(bundle).resolution
    make_bad(tmp_path / "bad.png", h, w)
    r = run("-m", "sdk", "synthesize", "--bundle", str(bundle), "--label", str(tmp_path / "bad.png"),
            "--out", str(tmp_path / "out.png"))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.png").exists()


def test_missing_bundle_and_unknown_model(tmp_path):
    r = run("-m", "sdk", "info", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = run("-m", "export", "bundle", "--model", "spade-mars", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown model 'spade-mars'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_export_list_shows_every_preset():
    from sdk.train.models import list_models

    r = run("-m", "export", "list")
    assert r.returncode == 0, r.stderr
    for name in list_models():
        assert name in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("spade-ade20k "))
    assert "96.5M" in row and "362." in row  # params and GFLOPs of the paper configuration
