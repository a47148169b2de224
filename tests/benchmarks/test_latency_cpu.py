"""latency.py with the CPU engines (built through the SDK's builder, run through its runners),
and the CPU table / targets of benchmarks/report.py."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("openvino")


def test_quick_cpu_engines_run_side_by_side(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "benchmarks/latency.py", "--quick", "--models", "progan-64", "--backends",
                           "onnxruntime,openvino,onnxruntime-int8", "--precision", "fp32,bf16,int8", "--batch", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads((out / "results.json").read_text())["records"]
    got = {(r["backend"], r["precision"]): r for r in records}
    assert got[("onnxruntime", "bf16")]["status"].startswith("skipped")  # the FP32 graph only
    assert got[("onnxruntime-int8", "fp32")]["status"].startswith("skipped")
    base = got[("onnxruntime", "fp32")]["median_ms"]
    for key in (("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime-int8", "int8")):
        r = got[key]
        if r["status"].startswith("skipped"):  # an engine below its quality bar is skipped, saying so
            assert "bar: not written" in r["status"]
            continue
        assert r["status"] == "ok" and r["runs"] >= 50
        assert math.isclose(r["speedup_vs_onnxruntime_fp32"], base / r["median_ms"])
        q = r["extra"]["quality_vs_fp32"]
        assert q["psnr_db"] >= r["extra"]["quality_bar_psnr_db"] and r["extra"]["engine_key"].startswith(key[0])
    assert sum(r["status"] == "ok" for r in records) >= 4
    summary = (out / "SUMMARY.md").read_text()
    assert "| model | HxW | batch | onnxruntime fp32 | openvino fp32 |" in summary
    assert "| progan-64 | 16x16 | 1 |" in summary


def _rec(backend, precision, ms, model="spade-ade20k", psnr=None, status="ok"):
    return {"model": model, "height": 256, "width": 256, "batch": 1, "backend": backend, "precision": precision,
            "status": status, "median_ms": ms, "runs": 50, "reduced_size": False, "io": "host",
            "extra": {"quality_vs_fp32": {"psnr_db": psnr}} if psnr is not None else {}}


def test_cpu_table_and_targets_from_records(tmp_path):
    from sdk.benchmarks.report import (
        CPU_README_END,
        CPU_README_START,
        check_cpu_targets,
        cpu_table,
        update_readme,
    )

    records = [_rec("onnxruntime", "fp32", 2400.0), _rec("openvino", "bf16", 1600.0, psnr=47.2),
               _rec("openvino", "int8", 1000.0, psnr=38.1),
               _rec("onnxruntime-int8", "int8", None, status="skipped: ... below its 30 dB bar: not written"),
               _rec("onnxruntime", "fp32", 5.0, model="spade-demo-street"),
               _rec("openvino", "int8", 6.0, model="spade-demo-street", psnr=45.0)]
    table = cpu_table({"device": "cpu test", "records": records}, "r.json")
    assert "| model | HxW | batch | onnxruntime fp32 | openvino bf16 | openvino int8 | fastest |" in table
    row = "| spade-ade20k | 256x256 | 1 | 2400.0 | 1600.0 (1.50x), 47.2 dB | 1000.0 (2.40x), 38.1 dB | openvino int8 |"
    assert row in table
    rows = {r["target"]: r for r in check_cpu_targets(records)}
    assert rows["spade-ade20k: fastest CPU engine >= 2x onnxruntime FP32"]["met"] is True
    assert rows["spade-demo-street: not slower than onnxruntime FP32 (the demo bundle)"]["met"] is False
    assert rows["oasis-ade20k: fastest CPU engine >= 2x onnxruntime FP32"]["met"] is None  # not measured
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{CPU_README_START}\nold\n{CPU_README_END}\nb\n")
    update_readme(readme, table, CPU_README_START, CPU_README_END)
    assert "2.40x" in readme.read_text() and "old" not in readme.read_text()
