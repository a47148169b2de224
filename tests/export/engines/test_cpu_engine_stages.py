"""The stages of ``export.engine_cpu.build_cpu_engine``, each run alone: the escalation
ladder's decisions and the quality gate on measured PSNR figures, the speed record's
arithmetic, one INT8 step made and adopted on a real bundle, and the record written into
a real manifest. The whole build runs end to end in ``test_cpu_engines.py``."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from sdk import Bundle
from sdk.engines import select_engine
from sdk.export.engine_cpu import (
    DYNAMIC_BATCH,
    QualityError,
    Step,
    adopt_candidate,
    calibration_once,
    climb_ladder,
    escalation_ladder,
    escalation_notes,
    first_notes,
    gate_quality,
    measure_step,
    plan_build,
    reference_outputs,
    speed_record,
    write_record,
)
from sdk.export.engine_quality import held_out_quality
from sdk.export.quantize import ESCALATION, KEEP_FLOAT
from sdk.manifest import QualityRecord, SpeedRecord

pytest.importorskip("openvino")

REFERENCE = {"image_u8": np.full((1, 8, 8, 3), 100, np.uint8)}


def _measured(offset: int) -> dict:
    """Held-out figures of an engine whose 8-bit image is ``offset`` levels off everywhere
    (PSNR 20 log10(255 / offset): 10 levels 28.13 dB, 5 levels 34.15 dB)."""
    got = {"image_u8": REFERENCE["image_u8"] + np.uint8(offset)}
    return held_out_quality([REFERENCE], [got], ["blocks-0"], ["blocks"], ["image_u8"], [])


def _climb(offsets: dict[int, int], groups: dict[str, int], bar: float, said: list[str]):
    """Climb the default INT8 ladder with step -> offset as each tried step's measurement."""
    tried: list[int] = []

    def try_step(step: int, kept: tuple[str, ...]) -> Step:
        tried.append(step)
        quality = _measured(offsets[step])
        entry = {"kept_float": list(kept), "worst_psnr_db": quality["model"]["worst_psnr_db"],
                 "median_ms": 10.0 + 2 * step}
        return Step(f"engine of step {step}", quality, entry)  # type: ignore[arg-type]

    ladder = escalation_ladder(KEEP_FLOAT, "int8", True)
    return climb_ladder(ladder, groups, bar, try_step, said.append), tried


def test_the_ladder_adds_one_group_per_step_for_int8_with_escalation_only():
    ladder = escalation_ladder(KEEP_FLOAT, "int8", True)
    assert ladder[0] == KEEP_FLOAT and len(ladder) == 1 + len(ESCALATION)
    assert ladder[-1] == KEEP_FLOAT + ESCALATION
    assert escalation_ladder(("modulation",), "int8", True)[3] == ("modulation", "input_convs", "label_convs")
    assert escalation_ladder(KEEP_FLOAT, "int8", False) == [KEEP_FLOAT]
    assert escalation_ladder(KEEP_FLOAT, "bf16", True) == [KEEP_FLOAT]


def test_the_climb_skips_empty_groups_and_stops_at_the_first_step_over_the_bar(tiny_bundle):
    groups = {"last_conv": 1, "attention": 0, "input_convs": 0, "label_convs": 4, "modulation": 6}
    said: list[str] = []
    climb, tried = _climb({0: 10, 2: 10, 3: 5}, groups, 30.0, said)
    assert tried == [0, 2, 3]  # input_convs has no nodes: not built
    assert climb.candidate == "engine of step 3" and climb.quality["model"]["worst_psnr_db"] == 34.15
    assert climb.steps[1] == {"kept_float": [*KEEP_FLOAT, "input_convs"],
                              "skipped": "input_convs: no such nodes in this graph"}
    assert [s["worst_psnr_db"] for s in climb.steps if "skipped" not in s] == [28.13, 28.13, 34.15]
    assert said == ["escalating: keeping label_convs float too (4 nodes) and quantizing again",
                    "escalating: keeping modulation float too (6 nodes) and quantizing again"]
    notes = escalation_notes(climb.steps, 30.0, KEEP_FLOAT, groups)
    assert notes["kept_float_groups"] == ["label_convs", "modulation"]  # what the bar needed beyond the start
    assert notes["speed_cost"] == round(16.0 / 10.0, 3) and notes["order"] == list(ESCALATION)
    plan = dataclasses.replace(plan_build(tiny_bundle, "onnxruntime-int8", "int8", calibration="procedural",
                                          calibration_size=4, keep_float=KEEP_FLOAT, threads=1), bar=30.0)
    gate_quality(plan, climb.quality, {"escalation": notes})  # passes: nothing raised

    # the first step meets the bar: nothing more is built, nothing kept float beyond the start
    climb, tried = _climb({0: 5}, groups, 30.0, said)
    assert tried == [0] and escalation_notes(climb.steps, 30.0, KEEP_FLOAT, groups)["kept_float_groups"] == []


def test_the_gate_refuses_below_the_bar_naming_what_was_kept_float(tiny_bundle):
    groups = {"last_conv": 1, "input_convs": 3, "label_convs": 4, "modulation": 6}
    climb, tried = _climb({0: 10, 1: 10, 2: 10, 3: 10}, groups, 30.0, [])
    assert tried == [0, 1, 2, 3] and climb.candidate == "engine of step 3"  # the whole ladder, still below
    notes = {"escalation": escalation_notes(climb.steps, 30.0, KEEP_FLOAT, groups)}
    plan = plan_build(tiny_bundle, "onnxruntime-int8", "int8", calibration="procedural", calibration_size=4,
                      keep_float=KEEP_FLOAT, threads=1)
    with pytest.raises(QualityError) as err:
        gate_quality(dataclasses.replace(plan, bar=30.0), climb.quality, notes)
    assert str(err.value) == (
        f"the onnxruntime-int8 int8 engine of {plan.bundle.name} scores 28.13 dB PSNR on its worst held-out image "
        f"(blocks-0) against the FP32 graph even with input_convs, label_convs, modulation kept float, below its "
        f"30 dB bar: not written (the bundle is unchanged)")
    # the bar itself passes (>=), a hundredth above it does not
    gate_quality(dataclasses.replace(plan, bar=28.13), climb.quality, notes)
    with pytest.raises(QualityError, match=r"28.13 dB PSNR .*\(blocks-0\) against the FP32 graph, below its 28.14"):
        gate_quality(dataclasses.replace(plan, bar=28.14), climb.quality, {})


def test_the_speed_record_sums_one_time_costs_into_the_break_even():
    times = {"engine": {"median_ms": 10.0, "p90_ms": 12.0}, "fp32": {"median_ms": 20.0, "p90_ms": 21.0}}
    speed = speed_record(times, 8, 2, ["image_u8"], load_ms={"engine": 30.04, "fp32": 5.0},
                         first_ms={"engine": 15.0, "fp32": 10.0}, runtime_import_ms=50.0)
    assert speed.speedup == 2.0 and speed.load_ms == 30.0 and speed.runs == 8
    assert speed.threads == 2 and speed.outputs == ["image_u8"] and "ABBA blocks of 4" in speed.method
    # (50 import + 30 load + 15 first call - 5 - 10 of onnxruntime FP32) / 10 ms saved per call
    assert speed.break_even_calls == 8.0
    slower = {**times, "engine": {"median_ms": 25.0, "p90_ms": 30.0}}
    speed = speed_record(slower, 8, 2, None, load_ms={"engine": 1.0, "fp32": 1.0},
                         first_ms={"engine": 1.0, "fp32": 1.0}, runtime_import_ms=0.0)
    assert speed.speedup == 0.8 and speed.break_even_calls is None


def test_one_int8_step_is_made_measured_and_adopted(tiny_bundle, tmp_path):
    plan = plan_build(tiny_bundle, "onnxruntime-int8", "int8", calibration="procedural", calibration_size=2,
                      keep_float=KEEP_FLOAT, threads=1)
    said: list[str] = []
    ref = reference_outputs(plan, 1, said.append)
    assert len(ref.items) == len(ref.outputs) > 0 and ref.load_ms > 0 and ref.first_call_ms > 0
    assert set(ref.outputs[0]) == set(plan.u8 + plan.floats) and plan.u8
    tmp = tmp_path / "building"
    tmp.mkdir()
    step = measure_step(plan, ref, tmp, calibration_once(plan, said.append), said.append, False, 0, plan.keep)
    assert (tmp / "step-0" / "model.onnx").is_file() and step.candidate.path == tmp / "step-0" / "model.onnx"
    assert step.entry["worst_psnr_db"] == step.quality["model"]["worst_psnr_db"] > 20 and "median_ms" not in step.entry
    assert step.candidate.quantization["quantized_nodes"] > 0
    assert any(s.startswith("quantizing model.onnx: calibrating on 2 seeded inputs") for s in said)
    out = adopt_candidate(step.candidate, tmp)
    assert out == tmp / "model.onnx" and out.is_file() and not list(tmp.glob("step-*"))
    again = step.candidate.run(ref.items[0].feeds)  # the loaded session still runs after the move
    assert set(plan.u8) <= set(again)


def test_the_record_is_written_into_the_manifest_with_the_engine_files(tiny_bundle):
    records = {}
    for backend, precision, name in (("onnxruntime-int8", "int8", "model.onnx"), ("openvino", "fp32", "model.xml")):
        plan = plan_build(tiny_bundle, backend, precision, calibration="procedural", calibration_size=2,
                          keep_float=KEEP_FLOAT, threads=3)
        plan.folder.mkdir(parents=True)
        shutil.copyfile(plan.src, plan.folder / name)
        quality = QualityRecord(reference="fp32", inputs="none", metric="psnr", bar_psnr_db=plan.bar,
                                model={"worst_psnr_db": 60.0, "mean_psnr_db": 61.0})
        speed = SpeedRecord(median_ms=1.0, onnxruntime_fp32_ms=2.0, speedup=2.0, break_even_calls=3.0)
        records[backend] = write_record(plan, {"model": f"engines/{plan.key}/{name}"}, quality, speed,
                                        first_notes(plan), build_s=1.5)
    b = Bundle(tiny_bundle)  # verifies every checksum, the engine files' included
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["engines"] == {r.key: r.to_json() for r in records.values()}  # the second record joined the first
    ort = select_engine(b, "onnxruntime-int8", "int8")
    assert ort == records["onnxruntime-int8"] and ort.files["model"] in b.manifest.files
    assert ort.notes == {"threads": 3, "inference_precision": "fp32"} and ort.build_s == 1.5
    assert ort.batch.to_json() == DYNAMIC_BATCH.to_json() and ort.quality.model["worst_psnr_db"] == 60.0
    assert select_engine(b, "openvino", "fp32").notes == {"threads": 3}
