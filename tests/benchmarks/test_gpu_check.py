"""benchmarks/gpu_check.sh, the one command for the GPU figures, runs end to end on CPU
(--dry-run: CI sizes, the same steps: export, latency with the reference row, merge, targets)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu_check"
    # a private inductor cache: another test worker compiling into the shared /tmp one at the same
    # time can leave a half-written kernel module that this run would import (ImportError)
    env = {**os.environ, "PYTHON": sys.executable, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads((out / "results.json").read_text())["records"]
    assert {r["status"] for r in records} == {"ok"}
    assert {(r["backend"], r["io"]) for r in records} == {
        ("reference", "device"), ("torch-eager", "host"), ("torch-compiled", "host"), ("onnxruntime", "host")}
    ref = {r["batch"]: r["median_ms"] for r in records if r["backend"] == "reference"}
    for r in records:  # every row carries its speed-up over the reference of the same batch
        assert abs(r["speedup_vs_reference"] - ref[r["batch"]] / r["median_ms"]) < 1e-9
    summary = (out / "SUMMARY.md").read_text()
    assert "spade-cityscapes batch 1 end to end <= 2.0 ms" in summary and "--dry-run" in summary
    bad = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument --bogus" in bad.stderr
