"""TensorRT end to end: needs tensorrt, cuda-python and an NVIDIA GPU (skipped otherwise)."""
from __future__ import annotations

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU machine)")
pytest.importorskip("cuda", reason="cuda-python is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("precision, limit", [("fp32", 1e-4), ("fp16", 1e-2)])
def test_tensorrt_engine_end_to_end(tiny_bundle, precision, limit):
    from sdk import Bundle
    from sdk.backends import make_runner, resolve_backend
    from sdk.export.engine_build import build_engine

    rec = build_engine(tiny_bundle, "tensorrt", precision=precision, batch="1:2:4")
    assert max(rec.parity.figures["model"].values()) < limit
    b = Bundle(tiny_bundle)
    assert resolve_backend(b, "auto") == "tensorrt"
    z = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    got = make_runner(b, "tensorrt", precision=precision).run({"z": z})["image"]
    ref = make_runner(b, "onnxruntime").run({"z": z})["image"]
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < limit
