"""AOTInductor end to end on CPU: build into a bundle, parity in the manifest, run via the SDK.

One test only: compiling even the tiny progan-64 graph takes about 1-1.5 minutes on two
CPU cores (inductor generates and compiles C++).
"""
from __future__ import annotations

import numpy as np
import pytest

from sdk import Bundle
from sdk.backends import make_runner, resolve_backend
from sdk.engines import current_key


@pytest.mark.slow
def test_aoti_cpu_engine_end_to_end(tiny_bundle, capsys):
    """Built as ``gpu_check.sh --aoti`` builds it: the latency benchmark builds the package
    into the bundle it holds, then runs it (from the manifest the build rewrote)."""
    from sdk.benchmarks.latency import make_callable

    run = make_callable("aoti", Bundle(tiny_bundle), "fp32", [1, 4], "cpu")
    z = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    assert run({"z": z})["image_u8"].shape == (4, 16, 16, 3)
    assert "[engine] probing model" in capsys.readouterr().out
    b = Bundle(tiny_bundle)  # sha256 of the package and the rewritten manifest verify
    key = current_key("aoti", "fp32")
    rec = b.manifest.engines[key]
    assert rec.files["model"] == f"engines/{key}/model.pt2" and rec.files["model"] in b.manifest.files
    assert rec.batch.to_json() == {"min": 1, "opt": 4, "max": 4}
    figures = rec.parity.figures["model"]
    assert set(figures) == {f"{p}batch_{n}" for p in ("", "blocks_") for n in (1, 2, 4)} | {"u8_max_levels"}
    assert max(v for k, v in figures.items() if k != "u8_max_levels") < 1e-4
    assert rec.parity.figures["model"]["u8_max_levels"] <= 1
    # the package was loaded and run once in a fresh process before the parity check
    assert rec.probe["model"].ok and rec.probe["model"].returncode == 0
    assert resolve_backend(b, "auto") == "aoti"
    aoti, ort = make_runner(b, "aoti"), make_runner(b, "onnxruntime")
    z = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)  # batch 3: inside 1..4
    got, ref = aoti.run({"z": z})["image"], ort.run({"z": z})["image"]
    assert got.shape == ref.shape == (3, 3, 16, 16)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4
