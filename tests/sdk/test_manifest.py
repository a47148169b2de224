"""The manifest's one typed definition: written from a Manifest, read back through its
schema check, every problem named in one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sdk import Bundle, BundleError
from sdk.bundle import write_manifest
from sdk.manifest import SCHEMA_VERSION, GraphRecord, Kind, Manifest, ParityRecord
from tests.conftest import ROOT


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


# -- records and older schemas -------------------------------------------------------------
def test_records_are_typed_and_round_trip(data):
    path, raw = data
    m = Bundle(path).manifest
    graph = m.graphs["model"]
    assert isinstance(graph, GraphRecord) and isinstance(graph.parity, ParityRecord)
    assert [(s.name, s.kind, s.shape) for s in graph.inputs] == [("z", Kind.LATENT, (None, 16))]
    assert graph.outputs_of(Kind.IMAGE_U8)[0].attrs == {"of": "image"} and graph.takes("latent")
    assert set(graph.parity.figures) == {"onnxruntime_cpu"} and graph.parity.u8_max_levels <= 1
    assert GraphRecord.from_json(raw["graphs"]["model"], "graph 'model'") == graph
    assert graph.to_json() == raw["graphs"]["model"]


def test_a_schema_2_manifest_still_reads(data, tmp_path):
    """Schema 2 wrote the same records as plain JSON: a bundle from before schema 3 loads, runs,
    and its manifest written again is schema 3 with the same content."""
    from sdk import Synthesizer

    path, raw = data
    (path / "manifest.json").write_text(json.dumps({**raw, "schema_version": 2}))
    b = Bundle(path)
    assert b.manifest.schema_version == SCHEMA_VERSION == 3
    assert b.manifest.to_json() == raw
    h, w = b.resolution
    assert np.asarray(Synthesizer(b)(seed=0)).shape == (h, w, 3)
    demo = Bundle(ROOT / "demo" / "spade-street")  # committed before schema 3, never rewritten
    assert json.loads((demo.path / "manifest.json").read_text())["schema_version"] == 2
    assert demo.graph("model").input_of(Kind.LABEL).attrs["num_classes"] == 35


def test_a_schema_1_manifest_is_refused_with_the_reexport_command(data):
    path, raw = data
    (path / "manifest.json").write_text(json.dumps({**raw, "schema_version": 1}))
    with pytest.raises(BundleError) as err:
        Bundle(path)
    assert "schema-1" in str(err.value) and "python -m export bundle --model progan-64" in str(err.value)


def _engine(key: str, **fields) -> dict:
    """The JSON of an engine record as an older or a current sdk wrote it."""
    return {"key": key, "backend": "onnxruntime-int8", "precision": "int8", "device": "cpu-x", "versions": {},
            "batch": {"min": 1, "opt": 1, "max": 1}, "files": {"model": f"engines/{key}/model.onnx"}, "shapes": {},
            "build_s": 1.0, "notes": {}, "probe": {}, "created": "", **fields}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["graphs"]["model"]["inputs"][0].update(kind="colour"), "has kind 'colour', none of label"),
    (lambda d: d["graphs"]["model"]["outputs"][0].update(shape=[None, "3"]), "has shape [None, '3']"),
    (lambda d: d["graphs"]["model"].update(parity="good"), "the parity of graph 'model' is str, not a record"),
    (lambda d: d["graphs"]["model"].update(label_lookups="none"), "has label_lookups 'none', not int"),
    (lambda d: d["engines"].update(k=_engine("k", speed={"median_ms": 1.0})),
     "the speed of engine 'k' lacks onnxruntime_fp32_ms, speedup"),
    (lambda d: d["engines"].update(k=_engine("other")), "engine 'k' records the key 'other'"),
    (lambda d: d["engines"].update(k={**_engine("k"), "colour": 1}), "engine 'k' has fields this sdk does not know"),
])
def test_record_problems_are_named(data, change, message):
    path, raw = data
    change(raw)
    (path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError) as err:
        Bundle(path, verify=False)
    assert message in str(err.value) and "re-export the bundle" in str(err.value) and "\n" not in str(err.value)


def test_an_engine_record_of_an_older_sdk_keeps_its_rebuild_notice(data, caplog):
    """A CPU engine recorded before worst-image quality: auto passes over it with the rebuild
    command, as before the records were typed; with the worst image recorded, auto runs it."""
    from sdk.engines import current_key, fastest_cpu_engine

    path, raw = data
    key = current_key("onnxruntime-int8", "int8")
    speed = {"median_ms": 1.0, "onnxruntime_fp32_ms": 3.0, "speedup": 3.0, "break_even_calls": 1.0}
    quality = {"reference": "fp32", "inputs": "8 maps", "metric": "psnr", "bar_psnr_db": 30.0,
               "model": {"psnr_db": 40.0, "max_abs_levels": 9, "mean_abs_levels": 0.5, "relative_l2": 0.01}}
    raw["engines"] = {key: _engine(key, quality=quality, speed=speed)}
    (path / "manifest.json").write_text(json.dumps({**raw, "schema_version": 2}))
    b = Bundle(path)
    assert b.manifest.engines[key].worst_psnr_db is None
    with caplog.at_level("WARNING", logger="sdk"):
        assert fastest_cpu_engine(b) is None
    assert any("records no worst-image quality" in r.getMessage() and "--backend onnxruntime-int8" in r.getMessage()
               for r in caplog.records)
    quality["model"]["worst_psnr_db"] = 40.0
    (path / "manifest.json").write_text(json.dumps(raw))
    assert fastest_cpu_engine(Bundle(path)).key == key
    assert Bundle(path).manifest.engines[key].to_json() == raw["engines"][key]


def test_string_keys_of_a_record_still_read_with_a_warning(data):
    """Records were dicts before schema 3: ``g["inputs"]`` reads the JSON for one more version."""
    path, raw = data
    graph = Bundle(path).graph("model")
    with pytest.warns(DeprecationWarning, match=r"GraphRecord\['inputs'\] is deprecated"):
        assert graph["inputs"] == raw["graphs"]["model"]["inputs"]
    with pytest.warns(DeprecationWarning, match="read the attribute"):
        assert graph.inputs[0].get("kind") == "latent"


def test_runner_inputs_are_the_manifests_tensor_specs(data):
    """One tensor description: a runner's inputs are the manifest's TensorSpec; TensorMeta,
    its old name in sdk.backends, still imports for one version with a warning."""
    import sdk.backends
    from sdk.backends import make_runner
    from sdk.manifest import TensorSpec

    path, _ = data
    b = Bundle(path)
    with make_runner(b, "onnxruntime") as runner:
        assert runner.inputs == b.graph("model").inputs and isinstance(runner.inputs[0], TensorSpec)
    with pytest.warns(DeprecationWarning, match="TensorMeta is deprecated"):
        assert sdk.backends.TensorMeta is TensorSpec
