"""The latency benchmark's quick mode, the roofline table and the paper-claims report."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[2]
MODEL = "progan-64"
FIELDS = ("model", "backend", "precision", "batch", "height", "width", "reduced_size", "device", "status", "runs",
          "timer", "median_ms", "p90_ms", "images_per_s", "peak_memory_mb", "memory_method", "params",
          "gflops_per_image", "roofline_floor_ms", "efficiency")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("latency")
    proc = subprocess.run([sys.executable, "benchmarks/latency.py", "--quick", "--models", MODEL, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_quick_run_writes_sane_results(quick_run):
    data = json.loads((quick_run / "results.json").read_text())
    assert data["quick"] and data["reduced_sizes"]
    records = data["records"]
    assert {(r["backend"], r["batch"]) for r in records} == {(b, n) for b in ("torch-eager", "onnxruntime")
                                                             for n in (1, 2)}
    for r in records:
        assert set(FIELDS) <= set(r)
        assert r["status"] == "ok" and r["model"] == MODEL and r["reduced_size"]
        assert r["runs"] >= 50 and r["timer"] == "perf_counter"
        assert 0 < r["median_ms"] <= r["p90_ms"] < 60_000
        assert math.isclose(r["images_per_s"], r["batch"] / r["median_ms"] * 1e3)
        assert r["peak_memory_mb"] >= 0 and "RSS" in r["memory_method"]
        assert r["params"] > 0 and r["gflops_per_image"] > 0
        assert r["roofline_floor_ms"] is None and "CPU" in r["roofline_note"]
    md = (quick_run / "results.md").read_text()
    assert "reduced sizes" in md and "| progan-64 |" in md and "x eager FP32" in md
    assert (quick_run / "latency.png").read_bytes()[:4] == b"\x89PNG"
    eager = {r["batch"]: r["median_ms"] for r in records if r["backend"] == "torch-eager"}
    for r in records:
        assert math.isclose(r["speedup_vs_eager_fp32"], eager[r["batch"]] / r["median_ms"])
    claims = json.loads((quick_run / "claims.json").read_text())
    assert {c["id"] for c in claims} >= {"groupdnet-fps", "progan-params"}
    # reduced sizes never stand in for a paper's full-size speed claim
    assert next(c for c in claims if c["id"] == "groupdnet-fps")["ours"] is None
    assert "Paper claims" in (quick_run / "claims.md").read_text()


def test_unknown_model_is_refused():
    proc = subprocess.run([sys.executable, "benchmarks/latency.py", "--quick", "--models", "spade-nope"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 2 and "unknown models ['spade-nope']" in proc.stderr


def test_gflops_match_a_flop_counter_on_the_real_model(quick_run):
    from sdk.train.models import get_preset

    record = json.loads((quick_run / "results.json").read_text())["records"][0]
    preset = get_preset(MODEL)
    torch.manual_seed(0)
    spec = preset.build(**preset.test_overrides).eval().graphs()["model"]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        spec.module(*spec.examples(1))
    assert abs(record["gflops_per_image"] * 1e9 / counter.get_total_flops() - 1) < 0.02


def test_roofline_table_and_floor():
    from sdk.benchmarks.roofline import lookup_gpu, min_bytes, roofline_floor_ms

    assert lookup_gpu("NVIDIA H100 80GB HBM3").name == "H100 SXM"
    assert lookup_gpu("NVIDIA H100 PCIe").name == "H100 PCIe"
    assert lookup_gpu("NVIDIA H200").name == "H200 SXM"
    assert lookup_gpu("NVIDIA A100-SXM4-80GB").name.startswith("A100")
    assert lookup_gpu("NVIDIA L4").name == "L4" and lookup_gpu("NVIDIA L40S") is None
    assert lookup_gpu("NVIDIA GeForce RTX 4090").name == "GeForce RTX 4090"
    h100 = lookup_gpu("H100 SXM5")
    # compute-bound: 989.4 TFLOP/s fp16 -> 1e12 FLOPs take ~1.01 ms
    assert math.isclose(roofline_floor_ms(1e12, 1e6, h100, "fp16"), 1e12 / 989.4e12 * 1e3)
    # memory-bound: 3.35 GB at 3350 GB/s -> 1 ms
    assert math.isclose(roofline_floor_ms(1.0, 3.35e9, h100, "fp16"), 1.0)
    assert min_bytes(1000, 10, "fp16") == 2000 + 40


def test_claims_report_compares_counts():
    from sdk.benchmarks.report import compare, load_claims

    claims = [c for c in load_claims() if c["metric"] in ("params", "images_per_s")]
    ids = {c["id"] for c in load_claims()}
    assert {"groupdnet-fps", "groupdnet-params", "dpsims-latency", "msgunet-tflops", "pix2pixhd-tflops",
            "msgunet-memory", "pix2pixhd-memory", "msgunet-speedup", "progan-params", "spade-params",
            "oasis-params"} <= ids
    fake = [{"model": "groupdnet-deepfashion", "batch": 1, "status": "ok", "reduced_size": False, "median_ms": 50.0,
             "images_per_s": 20.0, "backend": "tensorrt", "precision": "fp16", "device": "H100",
             "peak_memory_mb": 1000.0, "memory_method": "m"}]
    rows = {r["id"]: r for r in compare(claims, fake)}
    assert abs(rows["spade-params"]["relative_difference"]) < 0.01
    assert abs(rows["groupdnet-params"]["relative_difference"]) < 0.01
    assert math.isclose(rows["groupdnet-fps"]["relative_difference"], 20.0 / 12.2 - 1)
    assert all("why" in r for r in rows.values())


def test_readme_table_is_generated_from_results(tmp_path):
    from sdk.benchmarks.report import perf_table, update_readme

    def rec(backend, ms, batch=1):
        return {"model": "spade-ade20k", "height": 256, "width": 256, "batch": batch, "backend": backend,
                "precision": "fp32", "status": "ok", "median_ms": ms, "runs": 50}

    results = {"device": "cpu test", "torch": "2.x", "quick": False,
               "records": [rec("torch-eager", 300.0), rec("onnxruntime", 120.0),
                           {**rec("tensorrt", None), "status": "skipped: not installed"}]}
    table = perf_table(results, "r.json")
    assert "| torch-eager fp32 | onnxruntime fp32 |" in table and "tensorrt" not in table
    assert "| spade-ade20k | 256x256 | 1 | 300.0 | 120.0 (2.50x) |" in table
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- perf-table:start -->\nold\n<!-- perf-table:end -->\nafter\n")
    update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and "2.50x" in text and text.startswith("intro\n") and text.endswith("after\n")
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="perf-table"):
        update_readme(readme, table)
