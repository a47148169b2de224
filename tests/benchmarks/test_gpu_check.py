"""benchmarks/gpu_check.sh, the one command for the GPU figures, in its CPU dry run: the same
steps at CI size (import / backend check, one process per preset, every row, the parity
figure, SUMMARY.md), leaving what a lent GPU machine returns (<= 8 files, <= 2 folders
deep, < 16 MiB each, plain names), and going on after a preset that fails."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[2]
PRESET = "pix2pixhd-cityscapes-1024"  # a label model that compiles fast at CI size (and had the FP16 bug)
RETURNED = {"max_files": 8, "max_bytes": 16 * 2**20, "max_folders": 2, "name": re.compile(r"^[A-Za-z0-9._-]+$")}
"""What the device tool brings back from $OUT (/work/.library/device/README.md, Limits)."""


def test_gpu_check_dry_run(tmp_path):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    # a private inductor cache: another test worker compiling into the shared /tmp one at the same
    # time can leave a half-written kernel module that this run would import (ImportError)
    env = {**os.environ, "PYTHON": sys.executable, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    # the first preset fails on purpose (a name the registry lacks): the run must go on
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(out), "--scratch", str(scratch),
                           "--budget-min", "30", "--models", f"no-such-preset,{PRESET}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]

    # what a lent machine would bring back
    entries = list(out.rglob("*"))
    files = [p for p in entries if p.is_file()]
    assert sorted(p.name for p in files) == ["SUMMARY.md", "gpu_check.log", "results.json", "results.md"]
    assert len(files) <= RETURNED["max_files"] and not [p for p in entries if p.is_symlink()]
    for p in entries:
        parts = p.relative_to(out).parts
        assert len(parts) - (1 if p.is_file() else 0) <= RETURNED["max_folders"], p
        assert all(RETURNED["name"].match(part) for part in parts), p
    assert all(p.stat().st_size < RETURNED["max_bytes"] for p in files)
    assert (scratch / "bundles" / f"{PRESET}-32x64" / "manifest.json").is_file()  # bundles stay outside

    summary = (out / "SUMMARY.md").read_text()
    assert proc.stdout.rstrip().endswith(summary.rstrip())  # printed at the end
    assert "no-such-preset: FAILED (exit 2)" in summary and f"{PRESET}: done in" in summary
    assert "--dry-run" in summary and "preflight ok" in summary and "whole command:" in summary
    assert "spade-cityscapes batch 1 end to end <= 2.0 ms" in summary and "not measured" in summary
    assert "unknown models ['no-such-preset']" in (out / "gpu_check.log").read_text()

    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    assert {r["status"] for r in records} == {"ok"} and {r["model"] for r in records} == {PRESET}
    rows = {("reference-device", "device"), ("reference-host", "host"), ("torch-eager", "host"),
            ("torch-eager", "device"), ("torch-compiled", "host"), ("torch-compiled", "device")}
    assert {(r["backend"], r["io"], r["batch"]) for r in records} == {(b, io, n) for b, io in rows for n in (1, 2)}
    ref = {(r["io"], r["batch"]): r["median_ms"] for r in records if r["backend"].startswith("reference")}
    for r in records:  # "x reference" only against the reference of the same kind of row
        if r["backend"].startswith("reference"):
            assert r["speedup_vs_reference"] is None
        else:
            assert abs(r["speedup_vs_reference"] - ref[(r["io"], r["batch"])] / r["median_ms"]) < 1e-9
    [parity] = results["parity"]
    assert parity["model"] == PRESET and parity["precision"] == "fp16" and parity["finite"]
    assert 0 < parity["relative_l2"] < 1e-2 and parity["u8_max_levels"] <= 2
    md = (out / "results.md").read_text()
    assert "reference-host" in md and "## Parity of the torch runner against FP32" in md


def test_gpu_check_refuses_bad_arguments(tmp_path):
    for args, message in ((["--bogus"], "unknown argument --bogus"), ([], "--out DIR is required"),
                          (["--out", str(tmp_path), "--budget-min", "soon"], "whole minutes"),
                          (["--out", str(tmp_path), "--scratch", str(tmp_path / "s")], "outside --out")):
        bad = subprocess.run(["bash", "benchmarks/gpu_check.sh", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=HANG_S)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
