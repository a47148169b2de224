"""The latency benchmark's rows and what it writes: like compared only with like, results on
disk after every record, the GPU summary's targets, the roofline's measured ceilings, and
the reference rows as the official code runs them (on CPU)."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sdk.benchmarks.latency import Record, add_speedups, official_one_hot, to_uint8_host
from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[2]


def rec(backend: str, io: str, ms: float, batch: int = 1, precision: str = "fp16", model: str = "spade-cityscapes",
        **kw) -> Record:
    return Record(model, backend, precision, batch, 256, 512, False, "NVIDIA H200", io=io, median_ms=ms, **kw)


def test_x_reference_compares_like_with_like():
    rows = [rec("reference-device", "device", 2.0), rec("reference-host", "host", 4.0),
            rec("torch-compiled", "device", 1.0), rec("torch-compiled", "host", 2.5),
            rec("torch-eager", "host", 8.0), rec("torch-compiled", "host", 1.0, precision="bf16"),  # no bf16 reference
            rec("reference-host", "host", 40.0, batch=8), rec("torch-compiled", "host", 10.0, batch=8)]
    add_speedups(rows)
    got = [r.speedup_vs_reference for r in rows]
    assert got == [None, None, 2.0, 1.6, 0.5, None, None, 4.0]


def test_gpu_summary_checks_the_targets_of_a_full_size_run():
    from sdk.benchmarks.report import check_targets, gpu_summary

    rows = []
    for batch, host, dev, ref_host, ref_dev in ((1, 1.8, 1.0, 3.0, 1.1), (8, 9.5, 7.0, 12.0, 6.5)):
        rows += [rec("reference-host", "host", ref_host, batch), rec("reference-device", "device", ref_dev, batch),
                 rec("torch-compiled", "host", host, batch, tf32=False),
                 rec("torch-compiled", "device", dev, batch, tf32=False, efficiency=0.31)]
    rows.append(rec("torch-eager", "host", 5.0, batch=1, model="spade-ade20k"))  # no reference: not measured
    rows.append(rec("aoti", "host", 0.0, status="error: RuntimeError: boom"))
    add_speedups(rows)
    from dataclasses import asdict

    records = [asdict(r) for r in rows]
    met = {r["target"]: (r["measured"], r["met"]) for r in check_targets(records)}
    assert met["spade-cityscapes batch 1 end to end <= 2.0 ms"] == ("1.80 ms (torch-compiled fp16)", True)
    assert met["spade-cityscapes batch 8 end to end <= 9.0 ms"][1] is False
    assert met["spade-cityscapes batch 1 end to end >= 1.4x reference-host"] == ("1.67x (torch-compiled fp16)", True)
    assert met["spade-cityscapes batch 8 end to end >= 1.4x reference-host"][1] is False  # 12 / 9.5
    assert met["spade-cityscapes batch 1 device-resident >= 1.0x reference-device"][1] is True  # 1.1 / 1.0
    assert met["spade-cityscapes batch 8 device-resident >= 1.0x reference-device"][1] is False  # 6.5 / 7
    assert met["spade-cityscapes batch 8 device-resident >= 50% of the measured roofline"] == ("31.0%", False)
    assert met["spade-ade20k batch 1 end to end faster than reference-host"] == (None, None)
    text = gpu_summary({"device": "NVIDIA H200", "torch": "2.11.0", "records": records,
                        "roofline_ceilings": {"fp16_tflops": 700.0, "bf16_tflops": 790.0, "tf32_tflops": None,
                                              "fp32_tflops": None, "bandwidth_gbs": 4100.0},
                        "parity": [{"model": "spade-cityscapes", "precision": "fp16", "relative_l2": 2e-3,
                                    "u8_max_levels": 1}]}, ["a note"])
    assert "a note" in text and "| spade-cityscapes fp16 | 2.00e-03 | 1 |" in text
    assert "fp16 700 TFLOP/s, bf16 790 TFLOP/s; copy 4100 GB/s" in text
    assert "TF32 allowed by torch: torch-compiled fp16: off" in text
    assert "- spade-cityscapes aoti fp16 host batch 1: error: RuntimeError: boom" in text
    assert "reduced" not in text


def test_reference_one_hot_and_8_bits_are_the_official_ones():
    ids = torch.tensor([[[0, 2], [1, 2]]], dtype=torch.int32)
    one_hot = official_one_hot(ids, 3)
    assert one_hot.dtype == torch.float32 and one_hot.shape == (1, 3, 2, 2)
    assert torch.equal(one_hot.argmax(1), ids.long()) and torch.equal(one_hot.sum(1), torch.ones(1, 2, 2))
    image = torch.tensor([-1.0, -0.5, 0.0, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    u8 = to_uint8_host(image)
    assert u8.dtype == np.uint8 and u8.shape == (1, 2, 2, 3)
    assert u8[0, :, :, 0].tolist() == [[0, 63], [127, 255]]  # tensor2im: (x + 1) / 2 * 255, truncated


def test_ceilings_are_measured_not_looked_up():
    from sdk.benchmarks.roofline import measure_ceilings, roofline_floor_ms

    spec = measure_ceilings("this cpu", ["fp32", "bf16"], device="cpu", n=128, copy_bytes=1 << 20)
    assert spec.name.startswith("this cpu (measured: 128^3 GEMM, 1 MiB copy)")
    assert spec.peak_flops("fp32") > 0 and spec.peak_flops("bf16") > 0 and spec.bandwidth_gbs > 0
    with pytest.raises(ValueError, match="no fp16 peak"):
        spec.peak_flops("fp16")
    floor = roofline_floor_ms(2 * 128**3, 0, spec, "fp32")
    assert math.isclose(floor, 2 * 128**3 / spec.peak_flops("fp32") * 1e3)


def test_a_killed_run_keeps_what_it_finished(tmp_path):
    """results.json is rewritten after every record: killed after its first, a run has it."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "benchmarks/latency.py", "--quick", "--models", "progan-64",
                             "--backends", "torch-eager", "--batch", "1,2,4", "--runs", "3000", "--no-onnx", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results, deadline = out / "results.json", time.monotonic() + HANG_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.is_file() and json.loads(results.read_text())["records"]:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG_S)
    data = json.loads(results.read_text())  # whole: written atomically
    assert 1 <= len(data["records"]) < 3 and data["records"][0]["status"] == "ok"
    assert data["records"][0]["model"] == "progan-64" and data["records"][0]["batch"] == 1
    assert "| progan-64 |" in (out / "results.md").read_text()


def test_appended_runs_keep_earlier_records(tmp_path):
    from sdk.benchmarks.latency import Results

    first = Results(tmp_path, {"quick": True, "device": "cpu"})
    first.add(rec("torch-eager", "host", 3.0, model="progan-64"))
    first.add_parity({"model": "progan-64", "precision": "fp16", "relative_l2": 1e-3, "u8_max_levels": 1,
                      "how": "h", "against": "fp32", "device": "cpu"})
    second = Results(tmp_path, {"quick": True, "device": "cpu"}, append=True)
    second.add(rec("torch-eager", "host", 2.0, model="progan-256"))
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in data["records"]] == ["progan-64", "progan-256"] and len(data["parity"]) == 1
    assert Results(tmp_path, {"quick": True}).records == []  # without append a run starts afresh
