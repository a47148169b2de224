"""Engine keys, batch profiles, FP32 pinning, manifest records and refusals (no TensorRT, no GPU)."""
from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from sdk import Bundle
from sdk.backends import available_backends, make_runner, resolve_backend
from sdk.bundle import Manifest, write_manifest
from sdk.engines import (
    cpu_device,
    current_key,
    engine_key,
    gpu_device,
    has_matching_engine,
    select_engine,
)
from sdk.errors import BackendError
from sdk.export.engine_build import EngineBuildError, parity_batches, parse_shapes
from sdk.export.engine_records import BatchProfile, engine_record, parse_batch_profile
from sdk.export.engine_tensorrt import fp32_pinned_nodes, layer_matches
from sdk.export.parity import PARITY_LIMITS
from sdk.manifest import EngineRecord, ProbeRecord, TensorSpec


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


# -- keys and profiles -----------------------------------------------------------------
def test_engine_key_names_backend_precision_device_and_versions():
    gpu = gpu_device("NVIDIA H100 80GB HBM3", (9, 0))
    assert gpu == "nvidia-h100-80gb-hbm3-sm90"
    key = engine_key("tensorrt", "fp16", gpu, {"trt": "10.3.0", "cuda": "12.4"})
    assert key == "tensorrt-fp16-nvidia-h100-80gb-hbm3-sm90-trt10.3.0-cuda12.4"
    assert engine_key("aoti", "fp32", "cpu-x86_64", {"torch": "2.13.0"}) == "aoti-fp32-cpu-x86_64-torch2.13.0"
    assert cpu_device().startswith("cpu-")
    assert "/" not in key and " " not in key
    with pytest.raises(ValueError, match="precision"):
        engine_key("aoti", "int3", "cpu-x86_64", {})
    with pytest.raises(ValueError, match="backend"):
        engine_key("tvm", "fp32", "cpu-x86_64", {})


def test_current_aoti_key_is_this_machine():
    key = current_key("aoti", "fp32")
    assert key.startswith("aoti-fp32-") and "torch" in key


@pytest.mark.parametrize("text, expected", [("1:4:8", (1, 4, 8)), ("4", (4, 4, 4)), ("2:2:16", (2, 2, 16))])
def test_parse_batch_profile(text, expected):
    p = parse_batch_profile(text)
    assert (p.min, p.opt, p.max) == expected
    assert str(p) == ":".join(map(str, expected)) and p.to_json() == dict(zip(("min", "opt", "max"), expected))


@pytest.mark.parametrize("text", ["8:4:1", "0:1:2", "1:2", "a:b:c", "1:2:3:4"])
def test_bad_batch_profiles_are_refused(text):
    with pytest.raises(ValueError, match="batch profile"):
        parse_batch_profile(text)


def test_parity_batches_cover_min_and_two():
    assert parity_batches(BatchProfile(1, 4, 8)) == [1, 2, 4]
    assert parity_batches(BatchProfile(1, 1, 1)) == [1]


def test_parse_shapes_checks_static_dims():
    inputs = [TensorSpec("label", "label", (None, 151, 128, 128), dtype="int32"), TensorSpec("z", "latent", (None, 256))]
    assert parse_shapes([], inputs) == {"label": [151, 128, 128], "z": [256]}
    assert parse_shapes(["label=151x128x128"], inputs)["label"] == [151, 128, 128]
    with pytest.raises(EngineBuildError, match="does not fit"):
        parse_shapes(["label=151x256x256"], inputs)
    with pytest.raises(EngineBuildError, match="NAME=DxD"):
        parse_shapes(["image=3x8x8"], inputs)


# -- FP32 pinning from the ONNX graph -----------------------------------------------------
def _graph_with_norms() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="node_conv2d"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="node_batch_norm"),
        helper.make_node("ReduceMean", ["bn"], ["mean"], name="node_mean", keepdims=1),
        helper.make_node("Sub", ["bn", "mean"], ["centred"], name="spade/param_free_norm/Sub"),
        helper.make_node("Relu", ["centred"], ["y"]),  # unnamed: parser-style default name
    ]
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], [0.0] * 16)] + [
        helper.make_tensor(n, TensorProto.FLOAT, [4], [1.0] * 4) for n in ("s", "b", "m", "v")]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))


def test_fp32_pinned_nodes_by_op_type_and_name():
    pinned = fp32_pinned_nodes(_graph_with_norms())
    assert pinned == ["node_batch_norm", "node_mean", "spade/param_free_norm/Sub"]


def test_pinned_nodes_of_a_real_bundle_graph(tiny_bundle):
    # ProGAN's pixel norm is a decomposed normalisation: its statistics ops must be pinned.
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    pinned = set(fp32_pinned_nodes(model))
    stats = {n.name for n in model.graph.node if n.op_type in ("ReduceMean", "Sqrt", "Reciprocal", "Pow")}
    assert stats and stats <= pinned
    assert not any(n.op_type == "Conv" and n.name in pinned and "norm" not in n.name.lower() for n in model.graph.node)


def test_layer_name_matching():
    assert layer_matches("node_batch_norm", ["node_batch_norm"])
    assert layer_matches("node_batch_norm_1", ["node_batch_norm"])
    assert not layer_matches("node_conv2d", ["node_batch_norm"])


# -- manifest records, matching and refusals -----------------------------------------------
def _add_record(path, backend: str, precision: str, key: str) -> EngineRecord:
    folder = path / "engines" / key
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"not a real engine")
    rec = engine_record(key=key, backend=backend, precision=precision, device=key.split("-", 2)[2],
                        versions={"x": "1"}, batch=BatchProfile(1, 2, 4),
                        files={"model": f"engines/{key}/model.bin"}, parity={"model": {"batch_1": 1e-6}})
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["engines"] = {**manifest.get("engines", {}), key: rec.to_json()}
    write_manifest(path, Manifest.from_json(manifest))
    return rec


def test_engine_record_fields_and_manifest_checksums(tiny_bundle):
    rec = _add_record(tiny_bundle, "aoti", "fp16", "aoti-fp16-nvidia-a100-sm80-torch9.9")
    for field in ("key", "backend", "precision", "device", "versions", "batch", "files", "parity", "created"):
        assert field in rec.to_json()
    assert rec.batch.to_json() == {"min": 1, "opt": 2, "max": 4}
    assert rec.parity.limit == PARITY_LIMITS["fp16"] == 1e-2 and PARITY_LIMITS["fp32"] == 1e-4
    b = Bundle(tiny_bundle)  # verifies every sha256, the engine file included
    assert "engines/aoti-fp16-nvidia-a100-sm80-torch9.9/model.bin" in b.manifest.files
    assert select_engine(b, "aoti", key="aoti-fp16-nvidia-a100-sm80-torch9.9").precision == "fp16"


def test_mismatched_aoti_engine_is_refused_and_auto_falls_back(tiny_bundle):
    _add_record(tiny_bundle, "aoti", "fp32", "aoti-fp32-nvidia-h100-80gb-hbm3-sm90-torch2.0.0-cuda12.1")
    b = Bundle(tiny_bundle)
    with pytest.raises(BackendError, match="another device or runtime.*rebuild with python -m export engine "
                                           ".*--backend aoti --precision fp32"):
        make_runner(b, "aoti")
    assert not has_matching_engine(b, "aoti")
    assert resolve_backend(b, "auto") == "onnxruntime"


def test_missing_engine_names_the_build_command(tiny_bundle):
    with pytest.raises(BackendError, match="has no aoti engine.*python -m export engine"):
        make_runner(Bundle(tiny_bundle), "aoti")


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_tensorrt_missing_gives_a_clear_error(tiny_bundle, capsys):
    from sdk.export.cli import main

    _add_record(tiny_bundle, "tensorrt", "fp16", "tensorrt-fp16-nvidia-l4-sm89-trt10.0-cuda12.4")
    b = Bundle(tiny_bundle)
    with pytest.raises(BackendError, match="TensorRT is not installed here.*pip install tensorrt"):
        make_runner(b, "tensorrt")
    assert resolve_backend(b, "auto") == "onnxruntime"
    assert main(["engine", "--bundle", str(tiny_bundle), "--backend", "tensorrt"]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err


def test_backends_are_registered():
    assert {"tensorrt", "aoti", "onnxruntime", "torch"} <= set(available_backends())


def test_cpu_aoti_refuses_gpu_precisions(tiny_bundle, capsys):
    from sdk.export.cli import main

    assert main(["engine", "--bundle", str(tiny_bundle), "--backend", "aoti", "--precision", "fp16"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


# -- AOTInductor preparation (no compilation) ----------------------------------------------
def test_reduced_precision_keeps_norms_fp32_behind_an_fp32_interface():
    import torch
    from torch import nn

    from sdk.train.deploy.precision import ReducedPrecision

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    wrapped = ReducedPrecision(net, torch.bfloat16).eval()
    assert net[0].weight.dtype == torch.bfloat16 and net[1].weight.dtype == torch.float32
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        out = wrapped(x)
    assert out.dtype == torch.float32 and out.shape == (2, 4, 8, 8)


def test_attention_graphs_are_detected_and_batch_stays_dynamic():
    import torch
    from torch import nn

    from sdk.export.engine_aoti import export_program, has_attention

    class Attn(nn.Module):
        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    prog = export_program(Attn(), (torch.randn(2, 4, 8),), BatchProfile(1, 1, 1))
    assert has_attention(prog)
    assert not has_attention(export_program(nn.Conv2d(3, 3, 1), (torch.randn(2, 3, 4, 4),), BatchProfile(1, 2, 4)))
    q = next(n for n in prog.graph.nodes if n.op == "placeholder")  # the module has no parameters
    assert not isinstance(q.meta["val"].shape[0], int)  # symbolic batch even for a 1:1:1 profile


# -- AOTInductor packages that crash when loaded ------------------------------------------
def test_probe_reports_a_crash_in_one_line(tmp_path):
    from sdk.backends.aoti import describe_failure, probe_package

    bad = tmp_path / "model.pt2"
    bad.write_bytes(b"not a package")
    result = probe_package(str(bad), [TensorSpec("z", "latent", (None, 4))], "cpu", timeout=120)
    assert not result.ok and result.returncode == 1 and result.detail
    assert "\n" not in result.detail
    assert describe_failure(-11, "Fatal Python error: Segmentation fault\n") == \
        "killed by SIGSEGV; Fatal Python error: Segmentation fault"
    assert describe_failure(None, "no answer within 300 s (hung)") == "no answer within 300 s (hung)"


def test_a_package_that_failed_its_probe_is_never_loaded(tiny_bundle, caplog):
    """A recorded probe failure: auto skips the package, and asking for aoti runs the torch
    runner with a one-line notice instead of loading it (it would crash the process)."""
    key = current_key("aoti", "fp32")
    (tiny_bundle / "engines" / key).mkdir(parents=True)
    (tiny_bundle / "engines" / key / "model.pt2").write_bytes(b"would segfault")
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    record = engine_record(key=key, backend="aoti", precision="fp32", device=cpu_device(),
                           versions={}, batch=BatchProfile(1, 2, 4), files={"model": f"engines/{key}/model.pt2"},
                           parity={}, probe={"model": ProbeRecord(ok=False, returncode=-11, seconds=3.0,
                                                                  detail="killed by SIGSEGV")})
    manifest["engines"] = {key: record.to_json()}
    write_manifest(tiny_bundle, Manifest.from_json(manifest))
    b = Bundle(tiny_bundle)
    assert resolve_backend(b, "auto") == "onnxruntime"
    with caplog.at_level("WARNING", logger="sdk"):
        runner = make_runner(b, "aoti")
    assert runner.name == "torch"
    assert [r.getMessage() for r in caplog.records] == [
        "sdk: the AOTInductor package of progan-64 crashed when loaded in a fresh process "
        "(model: killed by SIGSEGV); running the torch backend instead"]
