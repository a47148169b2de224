"""Bundle integrity: missing, corrupt and tampered bundles are refused; writes are atomic."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sdk import Bundle, BundleError, Synthesizer
from sdk.atomic import atomic_dir, write_bytes_atomic

NAME = "spade-ade20k-vae"


@pytest.fixture()
def bundle_copy(small_bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(small_bundle(NAME), dst)
    return dst


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(BundleError, match="does not exist.*python -m export bundle"):
        Bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        Bundle(tmp_path / "empty")


def test_corrupt_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt"):
        Bundle(bundle_copy)


def test_tampered_file_is_refused(bundle_copy):
    data = bytearray((bundle_copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bundle_copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx does not match its sha256"):
        Synthesizer.from_pretrained(bundle_copy)


def test_missing_file_is_refused(bundle_copy):
    (bundle_copy / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match="encoder.onnx is missing"):
        Bundle(bundle_copy)


def test_schema_version_mismatch(bundle_copy):
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["schema_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="schema 99"):
        Bundle(bundle_copy)


def test_save_pretrained_round_trip(bundle_copy, tmp_path):
    s = Synthesizer.from_pretrained(bundle_copy)
    out = s.save_pretrained(tmp_path / "copy")
    t = Synthesizer.from_pretrained(out)
    label = np.zeros(s.bundle.resolution, np.int64)
    assert np.array_equal(np.asarray(s(label, seed=3)), np.asarray(t(label, seed=3)))
    assert t.bundle.manifest == s.bundle.manifest


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.bin").write_bytes(b"x" * 100)
            raise RuntimeError("export failed midway")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_bytes_atomic(tmp_path / "f.txt", b"new")
    assert (tmp_path / "f.txt").read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_failed_export_keeps_previous_bundle(bundle_copy):
    from sdk.export.bundle import build_bundle
    from sdk.export.parity import ParityError

    before = (bundle_copy / "manifest.json").read_bytes()
    with pytest.raises(ParityError):  # an impossible parity limit makes the export fail late
        build_bundle(NAME, bundle_copy, overrides={"ngf": 4, "spade_hidden": 8, "height": 128, "width": 128},
                     parity_limit=0.0)
    assert (bundle_copy / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in bundle_copy.parent.iterdir()) == ["b"]
