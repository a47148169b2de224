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
        q = r["extra"]["quality_vs_fp32"]  # the held-out worst image meets the bar, the mean is beside it
        assert q["mean_psnr_db"] >= q["worst_psnr_db"] >= r["extra"]["quality_bar_psnr_db"]
        assert set(r["extra"]["quality_rows"]) == {"latents"} and r["extra"]["engine_key"].startswith(key[0])
    # onnxruntime FP32 and the OpenVINO FP32 engine always run; a reduced-precision engine of this
    # tiny random network runs where its worst held-out image met the bar (INT8 35, BF16 45 dB).
    assert got[("onnxruntime", "fp32")]["status"] == "ok" and got[("openvino", "fp32")]["status"] == "ok"
    picks = json.loads((out / "results.json").read_text())["auto_picks"]
    assert picks["progan-64 16x16"] in {"onnxruntime fp32"} | {f"{b} {p}" for b, p in got if got[b, p]["status"] == "ok"}
    summary = (out / "SUMMARY.md").read_text()
    assert "| model | HxW | batch | onnxruntime fp32 | openvino fp32 |" in summary and " | auto |" in summary
    assert "| progan-64 | 16x16 | 1 |" in summary


def _rec(backend, precision, ms, model="spade-ade20k", worst=None, mean=None, status="ok", kept=None, seen=None):
    extra = {}
    if worst is not None:
        extra = {"quality_vs_fp32": {"worst_psnr_db": worst, "mean_psnr_db": mean, "psnr_db": mean},
                 "quality_bar_psnr_db": {"bf16": 45.0, "int8": 35.0, "fp32": 50.0}[precision],
                 "escalation": {"kept_float_groups": kept or []} if precision == "int8" else None,
                 "calibration_classes": seen}
    return {"model": model, "height": 256, "width": 256, "batch": 1, "backend": backend, "precision": precision,
            "status": status, "median_ms": ms, "runs": 50, "reduced_size": False, "io": "host", "extra": extra}


def test_cpu_table_and_targets_from_records(tmp_path):
    from sdk.benchmarks.report import (
        CPU_README_END,
        CPU_README_START,
        check_cpu_targets,
        cpu_table,
        update_readme,
    )

    every = {"classes": 151, "seen": 151, "missing": []}
    records = [_rec("onnxruntime", "fp32", 2400.0), _rec("openvino", "bf16", 1600.0, worst=46.0, mean=47.2),
               _rec("openvino", "int8", 700.0, worst=36.1, mean=38.1, kept=["input_convs"], seen=every),
               _rec("onnxruntime-int8", "int8", None, status="skipped: ... below its 35 dB bar: not written"),
               _rec("onnxruntime", "fp32", 5.0, model="spade-demo-street"),
               _rec("openvino", "int8", 6.0, model="spade-demo-street", worst=45.0, mean=46.0,
                    seen={"classes": 35, "seen": 34, "missing": [3]})]
    results = {"device": "cpu test", "records": records,
               "auto_picks": {"spade-ade20k 256x256": "openvino int8", "spade-demo-street 256x256": "onnxruntime fp32"}}
    table = cpu_table(results, "r.json")
    assert "| model | HxW | batch | onnxruntime fp32 | openvino bf16 | openvino int8 | auto |" in table
    row = ("| spade-ade20k | 256x256 | 1 | 2400.0 | 1600.0 (1.50x), 46.0 / 47.2 dB | "
           "700.0 (3.43x), 36.1 / 38.1 dB (input_convs float) | openvino int8 |")
    assert row in table
    rows = {r["target"]: r for r in check_cpu_targets(results)}
    target = "auto's pick >= 3x onnxruntime FP32 and >= 35 dB on its worst held-out image"
    assert rows[f"spade-ade20k: {target}"]["met"] is True
    assert rows["spade-ade20k: INT8 calibration sees every class"]["met"] is True
    assert rows["spade-demo-street: INT8 calibration sees every class"]["met"] is False
    assert rows["spade-demo-street: auto's pick meets its bar and is not slower than onnxruntime FP32 "
                "(the demo bundle)"]["met"] is True  # auto kept onnxruntime FP32 there
    assert rows[f"oasis-ade20k: {target}"]["met"] is None  # not measured
    results["auto_picks"]["spade-ade20k 256x256"] = "openvino bf16"  # 1.5x: below the 3x target
    assert {r["target"]: r for r in check_cpu_targets(results)}[f"spade-ade20k: {target}"]["met"] is False
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{CPU_README_START}\nold\n{CPU_README_END}\nb\n")
    update_readme(readme, table, CPU_README_START, CPU_README_END)
    assert "3.43x" in readme.read_text() and "old" not in readme.read_text()
