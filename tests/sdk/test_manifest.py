"""The manifest's one typed definition: written from a Manifest, read back through its
schema check, every problem named in one line."""
from __future__ import annotations

import json
import shutil

import pytest

from sdk import Bundle, BundleError
from sdk.bundle import write_manifest
from sdk.manifest import SCHEMA_VERSION, Manifest


@pytest.fixture()
def data(small_bundle, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(small_bundle("progan-64"), path)
    return path, json.loads((path / "manifest.json").read_text())


def test_round_trip(data):
    path, raw = data
    m = Bundle(path).manifest
    assert isinstance(m, Manifest) and m.schema_version == SCHEMA_VERSION and m.name == "progan-64"
    assert m.to_json() == raw  # nothing lost or added on the way through the dataclass


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("graphs"), "lacks graphs"),
    (lambda d: d.update(task="painting"), "task 'painting' is none of"),
    (lambda d: d.update(resolution=[64]), "resolution [64] is not [H, W]"),
    (lambda d: d.update(colour="blue"), "fields this sdk does not know (colour)"),
    (lambda d: d["graphs"]["model"].update(inputs=[]), "graph 'model' has no inputs"),
    (lambda d: d["graphs"]["model"]["inputs"][0].pop("dtype"), "lacks one of name, kind, shape, dtype"),
    (lambda d: d.update(schema_version=7), "schema 7"),
    (lambda d: d.update(label={"palette": []}), "label has no num_classes"),
    (lambda d: d.update(task="semantic"), "a semantic model's manifest lacks label"),  # valid JSON, no label
])
def test_schema_problems_are_named(data, change, message):
    path, raw = data
    change(raw)
    (path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError) as err:
        Bundle(path, verify=False)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_invalid_manifest_is_never_written(data):
    path, _ = data
    m = Bundle(path).manifest
    m.task = "painting"
    before = (path / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match="task 'painting'"):
        write_manifest(path, m)
    assert (path / "manifest.json").read_bytes() == before
