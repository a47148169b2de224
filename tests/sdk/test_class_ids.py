"""Class ids are the graph input: no float one-hot on the host, 8-bit images out, old
bundles refused, and the torch runner's device-side options (reachable on CPU)."""
from __future__ import annotations

import json
import shutil
import tracemalloc

import numpy as np
import pytest
import torch

from sdk import Bundle, BundleError, LabelError, Synthesizer
from sdk.errors import BackendError
from sdk.train.deploy.runner import TorchRunner
from tests.conftest import random_ids


def test_no_float_one_hot_is_built_on_the_host(small_bundle, monkeypatch):
    """8 COCO-Stuff label maps (183 classes): the feeds are int32 ids and uint8 edges, and no
    host allocation comes near the N x C x H x W float one-hot the graph builds itself."""
    s = Synthesizer.from_pretrained(small_bundle("spade-coco"), backend="onnxruntime", label_format="ids")
    h, w = s.bundle.resolution
    classes = s.bundle.num_classes
    labels = [random_ids((h, w), classes, seed=i) for i in range(8)]
    seen = {}
    runner = s.runner()
    original = runner.run

    def spy(feeds, outputs=None):
        seen.update({k: (v.dtype, v.shape) for k, v in feeds.items()})
        return original(feeds, outputs)

    monkeypatch.setattr(runner, "run", spy)
    s(labels[:1], seed=0)  # warm up: sessions and caches are not the call's allocations
    tracemalloc.start()
    images = s(labels, seed=0, batch_size=8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    one_hot_bytes = 8 * classes * h * w * 4
    assert len(images) == 8 and images[0].size == (w, h)
    assert seen["label"] == (np.dtype(np.int32), (8, h, w))
    assert seen["instance_edge"] == (np.dtype(np.uint8), (8, h, w))
    assert peak < one_hot_bytes / 10, (peak, one_hot_bytes)


def test_the_graph_returns_the_8_bit_image_the_sdk_shows(small_bundle):
    s = Synthesizer.from_pretrained(small_bundle("spade-cityscapes"), backend="onnxruntime", label_format="ids")
    h, w = s.bundle.resolution
    label = random_ids((h, w), s.bundle.num_classes)
    out = s.runner().run({"label": label[None].astype(np.int32),
                          "instance_edge": np.zeros((1, h, w), np.uint8)}, outputs=["image_u8"])
    assert list(out) == ["image_u8"] and out["image_u8"].dtype == np.uint8 and out["image_u8"].shape == (1, h, w, 3)
    np.testing.assert_array_equal(np.asarray(s(label, instance=np.zeros((h, w), np.int64))), out["image_u8"][0])


def test_schema_1_bundles_are_refused_with_the_reexport_command(small_bundle, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(small_bundle("progan-64"), old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as err:
        Bundle(old)
    message = str(err.value)
    assert "\n" not in message and "schema-1" in message
    assert f"python -m export bundle --model progan-64 --checkpoint {old / 'weights.safetensors'}" in message


def test_torch_runner_takes_tensors_and_returns_them(small_bundle):
    path = small_bundle("spade-cityscapes")
    b = Bundle(path)
    h, w = b.resolution
    ids = torch.from_numpy(random_ids((h, w), b.num_classes, seed=3)[None].astype(np.int32))
    edge = torch.zeros(1, h, w, dtype=torch.uint8)
    host = TorchRunner(b).run({"label": ids.numpy(), "instance_edge": edge.numpy()}, outputs=["image_u8"])
    with TorchRunner(b, output="tensor") as runner:
        out = runner.run({"label": ids, "instance_edge": edge}, outputs=["image_u8", "image"])
        assert isinstance(out["image_u8"], torch.Tensor) and out["image_u8"].dtype == torch.uint8
        np.testing.assert_array_equal(out["image_u8"].numpy(), host["image_u8"])
        bad = ids.clone()
        bad[0, 3, 4] = b.num_classes
        with pytest.raises(LabelError, match=f"0..{b.num_classes - 1}"):
            runner.run({"label": bad, "instance_edge": edge})


@pytest.mark.parametrize("options, message", [
    ({"precision": "tf32"}, "needs a CUDA GPU"), ({"precision": "int4"}, "choose one of"),
    ({"device": "cuda"}, "no CUDA GPU"), ({"output": "list"}, "'numpy' or 'tensor'")])
def test_torch_runner_refuses_what_this_machine_cannot_do(small_bundle, options, message):
    if torch.cuda.is_available():
        pytest.skip("the refusals are for a machine without a GPU")
    with pytest.raises(BackendError, match=message):
        TorchRunner(Bundle(small_bundle("progan-64")), **options)


def test_compiled_artifacts_persist_for_the_next_process(small_bundle, tmp_path):
    """torch.compile's artifacts land in engines/<key>/ (a cache: not in the manifest, the
    bundle still verifies) and a new runner loads them."""
    path = tmp_path / "b"
    shutil.copytree(small_bundle("progan-64"), path)
    b = Bundle(path)
    z = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    first = TorchRunner(b, compile=True)
    eager = TorchRunner(b).run({"z": z})["image"]
    np.testing.assert_allclose(first.run({"z": z})["image"], eager, atol=1e-5)
    cache = path / "engines" / first.cache_key() / "compile_cache.bin"
    assert first.cache_loaded_from is None and cache.is_file() and cache.stat().st_size > 0
    Bundle(path, verify=True)  # the cache is not a bundle file
    second = TorchRunner(Bundle(path), compile=True)
    assert second.cache_loaded_from == cache
    np.testing.assert_allclose(second.run({"z": z})["image"], eager, atol=1e-5)
