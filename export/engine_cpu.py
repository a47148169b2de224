"""CPU engines: OpenVINO (FP32 / BF16 / INT8) and onnxruntime INT8, from a bundle's ONNX graph.

``python -m export engine --backend openvino|onnxruntime-int8`` (``export.engine_build``
dispatches here; no torch needed, but to re-export an OpenVINO BF16 / INT8 engine's label
lookups as convolutions, ``export.engine_source``). Stages, each with a progress line:

1. INT8 only: calibrate and quantize the synthesis graph (``export.quantize``: QDQ,
   calibration maps from ``export.calibration``, which cover every class; the record
   lists the classes they held), or reuse the QDQ graph of an onnxruntime-int8 engine
   already in the bundle with the same settings;
2. OpenVINO only: convert the graph (FP32 or QDQ) once to an IR, ``engines/<key>/model.xml``
   + ``.bin`` (FP32 weights: BF16 is a compile-time hint, ``sdk.backends.openvino``), its
   outputs of the FP32 graph's types (float image, 8-bit image);
3. quality against the bundle's FP32 graph on the held-out set (``export.quality_set``,
   ``export.engine_quality``): the worst image's PSNR must meet its bar
   (``sdk.engines.QUALITY_BARS_DB``). **Escalation** (INT8): while it does not, the next
   node group of ``export.quantize.ESCALATION`` is kept float and the graph quantized
   again; each step's worst / mean PSNR and quick median are recorded
   (``notes.escalation``). Still below: the engine is not written;
4. speed against onnxruntime FP32 at batch 1, ABBA blocks, same thread count;
5. swap ``engines/<key>/`` in atomically and rewrite the manifest.

:func:`build_cpu_engine` reads as these stages, each a function that can be run alone:
:func:`plan_build` (options and key), :func:`reference_outputs`, :func:`climb_ladder`
(:func:`measure_step` per step of :func:`escalation_ladder`), :func:`escalation_notes`,
:func:`gate_quality`, :func:`adopt_candidate`, :func:`quality_record`, :func:`time_engine`
and :func:`write_record`.

Only the synthesis graph (``model``) gets an engine file; other graphs (a style encoder)
run the bundle's FP32 ONNX in the same runtime.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sdk.atomic import atomic_dir
from sdk.bundle import Bundle, write_manifest
from sdk.engines import (
    BACKEND_PRECISIONS,
    CPU_ENGINE_BACKENDS,
    cpu_engine_target,
    engine_key,
    engines_of,
    runtime_version,
)
from sdk.errors import BackendError
from sdk.export.calibration import CALIBRATION_SIZE, calibration_set
from sdk.export.engine_quality import (
    block_medians,
    held_out_quality,
    interleaved_medians,
    renderer_psnr,
)
from sdk.export.engine_records import QUALITY_BARS_DB, BatchProfile, engine_record
from sdk.export.engine_source import LABEL_CONVS, engine_source, label_convs_for
from sdk.export.quality_set import SEEDS_PER_ROW, HeldOutItem, describe, held_out_set
from sdk.export.quantize import ESCALATION, KEEP_FLOAT, node_groups, quantize_graph
from sdk.manifest import EngineRecord, Kind, QualityRecord, SpeedRecord, TensorSpec

Progress = Callable[[str], None]
Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
STEP_RUNS = 3
"""Timed calls (after one warm-up) of each escalation step's quick median."""
TIME_RUNS = 5
"""Fewest interleaved timed calls of the engine and of onnxruntime FP32 at build (more for
fast graphs: :func:`timed_runs`)."""
TIME_WARMUP = 3
"""Untimed calls first: OpenVINO's first inferences after compiling run several times slower
(the demo: 150 ms on the first call, 12 ms from the fourth), which one warm-up call missed."""
TIME_BUDGET_S = 3.0


def timed_runs(call_s: float, least: int = TIME_RUNS, most: int = 50) -> int:
    """Timed calls for a graph whose call takes ``call_s``: about :data:`TIME_BUDGET_S`
    seconds of it, between ``least`` and ``most``."""
    return max(least, min(most, int(TIME_BUDGET_S / max(call_s, 1e-4))))
OPENVINO_INT8_INFERENCE = "f32"
"""``INFERENCE_PRECISION_HINT`` of OpenVINO INT8 engines: the precision of the layers left
unquantized (normalisation, modulation, the kept-float nodes). Measured on spade-cityscapes
at full size (2 cores, under load, 3 interleaved calls): f32 2351 ms, 43.18 dB against FP32;
bf16 2678 ms, 42.97 dB: BF16 for the rest was no faster (likely because the float work
left is elementwise arithmetic bound by memory, not dot products) and cost 0.2 dB."""
DYNAMIC_BATCH = BatchProfile(1, 1, 4096)
"""The graphs keep the exported dynamic batch axis; speed is measured at batch 1."""


class QualityError(ValueError):
    """An engine below its quality bar against the FP32 graph: not written."""


def _ort_session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session as ``sdk.backends.onnxruntime`` opens one."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _ort_run(session: Any) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def onnxruntime_engine(path: Path, threads: int | None) -> Run:
    """Run an ONNX graph (FP32 or QDQ INT8) as ``sdk.backends.onnxruntime`` does."""
    return _ort_run(_ort_session(path, threads))


def openvino_engine(path: Path, precision: str, threads: int | None) -> Run:
    """Run an IR (or an ONNX graph, converted on reading) as ``sdk.backends.openvino.OpenVINORunner``
    compiles it (latency mode; INT8 with :data:`OPENVINO_INT8_INFERENCE` for the float layers)."""
    from sdk.backends.openvino import compile_config, import_openvino

    ov = import_openvino()
    core = ov.Core()
    inference = OPENVINO_INT8_INFERENCE if precision == "int8" else None
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  compile_config(precision, threads=threads, inference_precision=inference))
    request = compiled.create_infer_request()
    names = [o.get_any_name() for o in compiled.outputs]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = request.infer(feeds)
        return {n: np.array(result[compiled.output(n)], copy=True) for n in names}
    return run


def reusable_int8_graph(bundle: Bundle, calibration: str | Path, size: int, keep: tuple[str, ...],
                        label_convs: str = "lookups") -> tuple[EngineRecord, Path] | None:
    """An INT8 QDQ graph already in the bundle (an onnxruntime-int8 engine) quantized by this
    onnxruntime with the same calibration (the balanced, class-covering one: a record that
    lists its calibration classes), kept-float groups and graph form (``label_convs``,
    ``export.engine_source``): the same file a new quantization would write (calibration is
    deterministic), so OpenVINO INT8 reuses it."""
    try:
        version = runtime_version("onnxruntime")
    except BackendError:
        return None
    for record in engines_of(bundle, "onnxruntime-int8", "int8"):
        q = record.notes.get("quantization") or {}
        if (record.versions == {"onnxruntime": version} and q.get("calibration") == str(calibration)
                and q.get("calibration_maps") == size and sorted(q.get("kept_float", {})) == sorted(keep)
                and "calibration_classes" in q and "reused_from" not in q
                and q.get("label_convs", "lookups") == label_convs):
            path = bundle.file(record.files["model"])
            if path.is_file():
                return record, path
    return None


def _time_ms(run: Callable[[dict[str, np.ndarray]], Any], feeds: dict[str, np.ndarray]) -> float:
    t0 = time.perf_counter()
    run(feeds)
    return (time.perf_counter() - t0) * 1e3


def import_ms(backend: str) -> float:
    """Milliseconds a fresh process spends importing ``backend``'s runtime on top of
    onnxruntime (0 for onnxruntime-int8: every CPU command imports onnxruntime anyway)."""
    if backend != "openvino":
        return 0.0
    code = ("import time, onnxruntime; t = time.perf_counter(); import openvino; "
            "print((time.perf_counter() - t) * 1e3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return float(out.stdout.strip() or 0.0) if out.returncode == 0 else 0.0


def break_even_calls(speed: SpeedRecord) -> float | None:
    """Calls after which an engine has repaid its one-time cost over onnxruntime FP32 (import,
    load and a slower first call: what a one-shot command pays), from its ``speed`` record;
    None when it saves nothing per call."""
    saving = speed.onnxruntime_fp32_ms - speed.median_ms
    if saving <= 0:
        return None
    extra = ((speed.import_ms or 0.0) + (speed.load_ms or 0.0) + (speed.first_call_ms or 0.0)
             - (speed.onnxruntime_fp32_load_ms or 0.0) - (speed.onnxruntime_fp32_first_call_ms or 0.0))
    return round(max(extra, 0.0) / saving, 1)


def is_trained_demo(bundle: Bundle) -> bool:
    """The demo bundle with learned weights (its images can be scored against the renderer)."""
    return bundle.name == "spade-demo-street" and bundle.manifest.weights.get("norm_stats") == "learned"


def check_ir_outputs(model: Any, outputs: list[TensorSpec]) -> None:
    """Raise if the converted IR's outputs are not of the FP32 graph's types: an INT8 IR must
    still return the float image and the in-graph 8-bit image, not quantized tensors."""
    from sdk.export.engine_build import EngineBuildError

    want = {o.name: {"float32": "f32", "uint8": "u8"}.get(o.dtype, o.dtype) for o in outputs}
    for out in model.outputs:
        name = out.get_any_name()
        got = out.get_element_type().get_type_name()
        if name in want and got != want[name]:
            raise EngineBuildError(f"the OpenVINO IR's output {name} is {got}, not {want[name]} as in the FP32 graph; "
                                   f"report this with the bundle's manifest")


class _Candidate:
    """One engine file under test: its run function, path, load time and quantization notes."""

    def __init__(self, run: Run, path: Path, load_ms: float, quantization: dict[str, Any] | None) -> None:
        self.run, self.path, self.load_ms, self.quantization = run, path, load_ms, quantization


def _int8_graph(bundle: Bundle, source: Path, label_convs: str, qdq: Path, keep: tuple[str, ...], *,
                calibration: str | Path, calibration_size: int,
                calib: Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]],
                say: Progress) -> dict[str, Any]:
    """Quantize the synthesis graph ``source`` (of form ``label_convs``) to the QDQ graph ``qdq``
    (or copy the bundle's reusable one there); returns the quantization notes."""
    info = bundle.graph("model")
    reuse = reusable_int8_graph(bundle, calibration, calibration_size, keep, label_convs)
    if reuse is not None:
        record, path = reuse
        say(f"quantizing: reusing the INT8 graph of {record.key} (same calibration, same quantizer)")
        shutil.copyfile(path, qdq)
        return {**record.notes["quantization"], "reused_from": record.key}
    feeds, classes = calib()
    what = f"{calibration} label maps" if classes is not None else "seeded inputs"
    say(f"quantizing {source.name}: calibrating on {calibration_size} {what}, keeping "
        f"{', '.join(keep) or 'nothing extra'} in float")
    labels = [s.name for s in info.inputs if s.kind in (Kind.LABEL, Kind.INSTANCE_EDGE)]
    quantization = quantize_graph(source, qdq, feeds, keep_float=keep, label_inputs=labels)
    quantization.update({"calibration": str(calibration), "calibration_classes": classes, "label_convs": label_convs})
    return quantization


def _convert_to_ir(bundle: Bundle, graph_file: Path, folder: Path, say: Progress) -> Path:
    """Convert an ONNX graph (FP32 or QDQ) to ``folder/model.xml`` + ``.bin``; returns the ``.xml``."""
    from sdk.backends.openvino import import_openvino

    info = bundle.graph("model")
    ov = import_openvino()
    out = folder / "model.xml"
    say(f"converting {graph_file.name} to an OpenVINO IR")
    converted = ov.convert_model(str(graph_file))
    check_ir_outputs(converted, info.outputs)
    ov.save_model(converted, str(out), compress_to_fp16=False)
    return out


def _make_candidate(plan: BuildPlan, folder: Path, keep: tuple[str, ...],
                    calib: Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]],
                    say: Progress) -> _Candidate:
    """Quantize (INT8) or reuse, convert (OpenVINO) and load one engine of ``plan.source`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    graph_file, quantization = plan.source, None
    if plan.precision == "int8":
        graph_file = folder / ("model.qdq.onnx" if plan.backend == "openvino" else "model.onnx")
        quantization = _int8_graph(plan.bundle, plan.source, plan.label_convs, graph_file, keep,
                                   calibration=plan.calibration, calibration_size=plan.calibration_size,
                                   calib=calib, say=say)
    if plan.backend == "openvino":
        out = _convert_to_ir(plan.bundle, graph_file, folder, say)
        if graph_file != plan.source:  # the QDQ graph lives on in the IR
            graph_file.unlink()
        t0 = time.perf_counter()
        run = openvino_engine(out, plan.precision, plan.threads)
    else:
        out = graph_file
        t0 = time.perf_counter()
        run = onnxruntime_engine(out, plan.threads)
    return _Candidate(run, out, (time.perf_counter() - t0) * 1e3, quantization)


def _outputs(run: Run, items: list[HeldOutItem], names: list[str]) -> list[dict[str, np.ndarray]]:
    return [{k: v for k, v in run(item.feeds).items() if k in names} for item in items]


def _say_quality(say: Progress, what: str, q: dict[str, Any], bar: float) -> None:
    m = q["model"]
    rows = "; ".join(f"{row} {r['worst_psnr_db']:g} / {r['mean_psnr_db']:g}" for row, r in q["rows"].items())
    say(f"{what}: worst image {m['worst_psnr_db']} dB ({m['worst_image']}), mean {m['mean_psnr_db']} dB "
        f"(bar {bar:g} on the worst image); worst / mean per row: {rows}")


# -- the stages of a build ----------------------------------------------------------------
@dataclass
class BuildPlan:
    """What one build makes and from what: its checked options, the engine's key and the
    synthesis graph's outputs the quality check compares."""

    bundle: Bundle
    backend: str
    precision: str
    device: str
    versions: dict[str, str]
    key: str
    keep: tuple[str, ...]
    src: Path
    calibration: str | Path
    calibration_size: int
    threads: int | None
    threads_used: int
    u8: list[str]
    floats: list[str]
    bar: float
    label_convs: str
    """The graph form the engine is built from (``export.engine_source``)."""
    source: Path
    """That graph: ``src`` (the bundle's, the quality reference), or its re-export with
    convolutions while the build lasts (:func:`build_cpu_engine`)."""

    @property
    def folder(self) -> Path:
        """``engines/<key>/`` in the bundle."""
        return self.bundle.path / "engines" / self.key


@dataclass
class Reference:
    """The bundle's FP32 graph on onnxruntime and its outputs on the held-out set."""

    fp32: Run
    load_ms: float
    first_call_ms: float
    items: list[HeldOutItem]
    outputs: list[dict[str, np.ndarray]]


@dataclass
class Step:
    """One tried step of the escalation ladder: its engine, quality and ``notes.escalation`` entry."""

    candidate: _Candidate
    quality: dict[str, Any]
    entry: dict[str, Any]


@dataclass
class Climb:
    """Where the ladder stopped: the last engine tried, its quality and every step's entry."""

    candidate: _Candidate
    quality: dict[str, Any]
    steps: list[dict[str, Any]]


def plan_build(bundle_path: str | Path, backend: str, precision: str, *, calibration: str | Path,
               calibration_size: int, keep_float: Iterable[str], threads: int | None,
               label_convs: str = "auto") -> BuildPlan:
    """Check the options and the bundle (one-line :class:`EngineBuildError` naming the fix)
    and work out the engine's key."""
    from sdk.export.engine_build import EngineBuildError

    if backend not in CPU_ENGINE_BACKENDS:
        raise EngineBuildError(f"{backend!r} is not a CPU engine backend; choose {' or '.join(CPU_ENGINE_BACKENDS)}")
    if precision not in BACKEND_PRECISIONS[backend]:
        raise EngineBuildError(f"{backend} builds {', '.join(BACKEND_PRECISIONS[backend])} engines, not {precision}")
    if calibration_size < 1:
        raise EngineBuildError(f"--calibration-size must be >= 1, got {calibration_size}")
    if label_convs not in LABEL_CONVS:
        raise EngineBuildError(f"--label-convs {label_convs!r}: choose {', '.join(LABEL_CONVS)}")
    bundle = Bundle(bundle_path)
    info = bundle.graph("model")
    if info.file is None:
        raise EngineBuildError(f"{bundle.path} has no ONNX graph (exported with --no-onnx); CPU engines are built "
                               f"from it: re-export without --no-onnx")
    device, versions = cpu_engine_target(backend)
    key = engine_key(backend, precision, device, versions)
    return BuildPlan(bundle=bundle, backend=backend, precision=precision, device=device, versions=versions, key=key,
                     keep=tuple(keep_float), src=bundle.file(info.file), calibration=calibration,
                     label_convs=label_convs_for(bundle, backend, precision, label_convs), source=bundle.file(info.file),
                     calibration_size=calibration_size, threads=threads, threads_used=threads or os.cpu_count() or 1,
                     u8=[o.name for o in info.outputs_of(Kind.IMAGE_U8)],
                     floats=[o.name for o in info.outputs_of(Kind.IMAGE)], bar=QUALITY_BARS_DB[precision])


def first_notes(plan: BuildPlan) -> dict[str, Any]:
    """The record's ``notes`` before the build: threads, and INT8's precision for the float layers."""
    notes: dict[str, Any] = {"threads": plan.threads_used}
    if plan.bundle.graph("model").label_lookups:
        notes["label_convs"] = plan.label_convs
    if plan.precision == "int8":
        notes["inference_precision"] = OPENVINO_INT8_INFERENCE if plan.backend == "openvino" else "fp32"
    return notes


def calibration_once(plan: BuildPlan, say: Progress
                     ) -> Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]]:
    """A call returning the calibration inputs and their class coverage, made once when first needed."""
    bundle, calibration, calibration_size = plan.bundle, plan.calibration, plan.calibration_size
    cache: dict[str, Any] = {}

    def calib() -> tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]:
        """The calibration inputs and their class coverage, made once when first needed."""
        if "set" not in cache:
            cache["set"] = calibration_set(bundle, calibration, calibration_size)
            classes = cache["set"][1]
            if classes is not None:
                missing = classes["missing"]
                say(f"calibration: {calibration_size} {calibration} label maps hold {classes['seen']} of "
                    f"{classes['classes']} classes" + (f"; missing {missing[:12]}{' ...' if len(missing) > 12 else ''}"
                                                      f" (their label layers are calibrated on nothing)"
                                                      if missing else ""))
        return cache["set"]
    return calib


def reference_outputs(plan: BuildPlan, held_out_seeds: int, say: Progress) -> Reference:
    """Load the FP32 graph on onnxruntime and run it on the held-out set."""
    t0 = time.perf_counter()
    fp32 = onnxruntime_engine(plan.src, plan.threads)
    fp32_load_ms = (time.perf_counter() - t0) * 1e3
    items = held_out_set(plan.bundle, "model", held_out_seeds)
    first_fp32_ms = _time_ms(fp32, items[0].feeds)
    say(f"reference: the FP32 graph (onnxruntime) on the {describe(items)}")
    reference = _outputs(fp32, items, plan.u8 + plan.floats)
    return Reference(fp32, fp32_load_ms, first_fp32_ms, items, reference)


def group_sizes(plan: BuildPlan) -> dict[str, int]:
    """Nodes per INT8 node group (``export.quantize.NODE_GROUPS``) of the graph; none unless INT8."""
    return {g: len(v) for g, v in node_groups(_load_graph(plan.source)).items()} if plan.precision == "int8" else {}


def escalation_ladder(keep: tuple[str, ...], precision: str, escalate: bool) -> list[tuple[str, ...]]:
    """The kept-float groups of each step: ``keep``, then one more group of
    :data:`ESCALATION` per step (INT8 with escalation only)."""
    return [keep] + ([tuple(dict.fromkeys(keep + ESCALATION[:k + 1])) for k in range(len(ESCALATION))]
                     if precision == "int8" and escalate else [])


def measure_step(plan: BuildPlan, ref: Reference, tmp: Path,
                 calib: Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]], say: Progress,
                 timed: bool, step: int, kept: tuple[str, ...]) -> Step:
    """Make the engine of one ladder step in ``tmp/step-<n>`` and measure its held-out quality
    (and, when ``timed``, a quick median)."""
    candidate = _make_candidate(plan, tmp / f"step-{step}", kept, calib, say)
    items, u8, floats = ref.items, plan.u8, plan.floats
    say(f"checking quality: {plan.backend} {plan.precision} vs the FP32 graph on {len(items)} held-out inputs")
    quality = held_out_quality(ref.outputs, _outputs(candidate.run, items, u8 + floats),
                               [i.name for i in items], [i.row for i in items], u8, floats)
    _say_quality(say, "quality", quality, plan.bar)
    entry: dict[str, Any] = {"kept_float": list(kept), "worst_psnr_db": quality["model"]["worst_psnr_db"],
                             "worst_image": quality["model"]["worst_image"],
                             "mean_psnr_db": quality["model"]["mean_psnr_db"]}
    if timed:
        entry["median_ms"] = interleaved_medians({"e": lambda: candidate.run(items[0].feeds)},
                                                 STEP_RUNS, warmup=1)["e"]["median_ms"]
    return Step(candidate, quality, entry)


def climb_ladder(ladder: list[tuple[str, ...]], groups: dict[str, int], bar: float,
                 try_step: Callable[[int, tuple[str, ...]], Step], say: Progress) -> Climb:
    """Try each step of ``ladder`` (``try_step(step, kept)``) until one's worst held-out image
    meets ``bar``; a step whose added groups have no nodes in the graph is skipped."""
    steps: list[dict[str, Any]] = []
    tried: Step | None = None
    for step, kept in enumerate(ladder):
        added = [g for g in kept if g not in (ladder[step - 1] if step else ())]
        if step and not any(groups.get(g) for g in added):
            steps.append({"kept_float": list(kept), "skipped": f"{', '.join(added)}: no such nodes in this graph"})
            continue
        if step:
            say(f"escalating: keeping {', '.join(added)} float too "
                f"({sum(groups.get(g, 0) for g in added)} nodes) and quantizing again")
        tried = try_step(step, kept)
        steps.append(tried.entry)
        if tried.quality["model"]["worst_psnr_db"] >= bar:
            break
    assert tried is not None
    return Climb(tried.candidate, tried.quality, steps)


def escalation_notes(steps: list[dict[str, Any]], bar: float, keep: tuple[str, ...],
                     groups: dict[str, int]) -> dict[str, Any]:
    """``notes.escalation``: every step, the groups kept float beyond ``keep`` and their speed cost."""
    timed = [s for s in steps if "median_ms" in s]
    return {
        "bar_psnr_db": bar, "order": list(ESCALATION), "steps": steps,
        "kept_float_groups": [g for g in timed[-1]["kept_float"] if g not in keep and groups.get(g)],
        "node_groups": groups,
        "speed_cost": round(timed[-1]["median_ms"] / timed[0]["median_ms"], 3) if len(timed) > 1 else 1.0,
        "method": f"each step: worst / mean PSNR on the held-out set; median of {STEP_RUNS} calls after 1 "
                  f"warm-up, batch 1 (speed_cost: last step's median / the first's)"}


def gate_quality(plan: BuildPlan, quality: dict[str, Any], notes: dict[str, Any]) -> None:
    """Raise :class:`QualityError` when the worst held-out image is below the plan's bar."""
    worst = quality["model"]["worst_psnr_db"]
    if not worst >= plan.bar:
        kept = notes.get("escalation", {}).get("kept_float_groups")
        tried = f" even with {', '.join(kept)} kept float" if kept else ""
        other = " (built from label convolutions; --label-convs lookups tries the lookups)" \
            if plan.label_convs == "convolutions" else ""
        raise QualityError(f"the {plan.backend} {plan.precision} engine of {plan.bundle.name} scores {worst} dB PSNR "
                           f"on its worst held-out image ({quality['model']['worst_image']}) against the FP32 "
                           f"graph{tried}, below its {plan.bar:g} dB bar: not written (the bundle is unchanged)"
                           f"{other}")


def adopt_candidate(candidate: _Candidate, tmp: Path) -> Path:
    """Move the passing step's files up into ``tmp`` (they become the engine's), drop every
    step folder; returns the engine file's new path."""
    for f in candidate.path.parent.iterdir():
        f.rename(tmp / f.name)
    out = tmp / candidate.path.name
    for stale in tmp.glob("step-*"):
        shutil.rmtree(stale)
    return out


def quality_record(plan: BuildPlan, ref: Reference, quality: dict[str, Any], engine: Run,
                   say: Progress) -> QualityRecord:
    """The record's ``quality``: the held-out figures (``held_out_quality``'s), what they mean,
    and for the trained demo its score against the procedural renderer."""
    info, u8 = plan.bundle.graph("model"), plan.u8
    record_quality = QualityRecord(
        reference="the bundle's FP32 ONNX graph on onnxruntime CPU", inputs=describe(ref.items),
        metric="8-bit image: PSNR per image (dB, peak 255): worst and mean, per row and over the set; pooled: "
               "PSNR, max / mean absolute difference in levels; float image: relative L2",
        bar_psnr_db=plan.bar, bar_on="the worst image of the held-out set", **quality)
    label = info.input_of(Kind.LABEL)
    if is_trained_demo(plan.bundle) and label and u8 and len(info.inputs) == 1:
        say("scoring against the procedural renderer on held-out scenes")
        record_quality.renderer = renderer_psnr({"engine": engine, "fp32": ref.fp32}, label.name, u8[0],
                                                plan.bundle.resolution)
    return record_quality


def time_engine(plan: BuildPlan, ref: Reference, candidate: _Candidate, first_call_ms: float, time_runs: int,
                say: Progress) -> SpeedRecord:
    """The record's ``speed``: the engine against onnxruntime FP32 at batch 1, ABBA blocks."""
    feeds = ref.items[0].feeds
    engine, fp32 = candidate.run, ref.fp32
    calls = {"engine": lambda: engine(feeds), "fp32": lambda: fp32(feeds)}
    warm = interleaved_medians(calls, 1, warmup=TIME_WARMUP - 1)  # the last warm-up call, timed
    runs = timed_runs(max(v["median_ms"] for v in warm.values()) / 1e3, least=time_runs)
    say(f"timing: {plan.backend} {plan.precision} vs onnxruntime FP32, batch 1, {runs} calls each in ABBA blocks, "
        f"{plan.threads_used} threads")
    times = block_medians(calls, runs, warmup=1)
    speed = speed_record(times, runs, plan.threads_used, plan.u8[:1] or None,
                         load_ms={"engine": candidate.load_ms, "fp32": ref.load_ms},
                         first_ms={"engine": first_call_ms, "fp32": ref.first_call_ms},
                         runtime_import_ms=import_ms(plan.backend))
    even = speed.break_even_calls
    repaid = ("no saving per call" if even is None else
              f"its one-time cost (import, load, first call) repaid after {even:g} calls")
    say(f"speed: {speed.median_ms:.3g} ms vs onnxruntime FP32 {speed.onnxruntime_fp32_ms:.3g} ms "
        f"({speed.speedup:.2f}x); {repaid}")
    return speed


def speed_record(times: dict[str, dict[str, float]], runs: int, threads_used: int, wanted: list[str] | None, *,
                 load_ms: dict[str, float], first_ms: dict[str, float],
                 runtime_import_ms: float) -> SpeedRecord:
    """``speed`` from the block medians ``times`` of ``engine`` and ``fp32`` and the one-time costs."""
    speed = SpeedRecord(
        median_ms=times["engine"]["median_ms"], p90_ms=times["engine"]["p90_ms"],
        onnxruntime_fp32_ms=times["fp32"]["median_ms"],
        speedup=round(times["fp32"]["median_ms"] / times["engine"]["median_ms"], 3),
        batch=1, threads=threads_used, outputs=wanted,
        load_ms=round(load_ms["engine"], 1), onnxruntime_fp32_load_ms=round(load_ms["fp32"], 1),
        first_call_ms=round(first_ms["engine"], 1), onnxruntime_fp32_first_call_ms=round(first_ms["fp32"], 1),
        import_ms=round(runtime_import_ms, 1), runs=runs, warmup=TIME_WARMUP,
        method=f"median of {runs} calls after {TIME_WARMUP} warm-up, engine and onnxruntime FP32 in "
               f"ABBA blocks of {runs // 2}, 1 untimed call before each (time.perf_counter), at build; "
               f"load: reading and compiling the graph (session creation), once; first call: the call "
               f"right after loading; import: importing the runtime in a fresh process, beyond "
               f"onnxruntime (which every CPU command imports)")
    speed.break_even_calls = break_even_calls(speed)
    return speed


def write_record(plan: BuildPlan, files: dict[str, str], quality: QualityRecord, speed: SpeedRecord,
                 notes: dict[str, Any], build_s: float) -> EngineRecord:
    """Add the engine's record to the bundle's manifest (the checksums of every file with it); returns it."""
    record = engine_record(key=plan.key, backend=plan.backend, precision=plan.precision, device=plan.device,
                           versions=plan.versions, batch=DYNAMIC_BATCH, files=files, quality=quality, speed=speed,
                           notes=notes, build_s=build_s)
    manifest = Bundle(plan.bundle.path, verify=False).manifest
    manifest.engines = {**manifest.engines, plan.key: record}
    write_manifest(plan.bundle.path, manifest)
    return record


def build_cpu_engine(bundle_path: str | Path, backend: str, *, precision: str, calibration: str | Path = "procedural",
                     calibration_size: int = CALIBRATION_SIZE, keep_float: Iterable[str] = KEEP_FLOAT,
                     escalate: bool = True, threads: int | None = None, held_out_seeds: int = SEEDS_PER_ROW,
                     time_runs: int = TIME_RUNS, label_convs: str = "auto",
                     progress: Progress | None = None) -> EngineRecord:
    """Build a CPU engine of ``backend`` at ``precision`` into the bundle; returns its record.

    ``keep_float``: node groups (``export.quantize.NODE_GROUPS``) INT8 leaves float from the
    start; ``escalate``: keep more (``export.quantize.ESCALATION``) while the worst held-out
    image is below the bar; ``label_convs``: the graph form to build from
    (``export.engine_source``: ``auto`` re-exports OpenVINO BF16 / INT8 engines' label
    lookups as convolutions). Raises :class:`QualityError` (bundle unchanged) when the
    engine's worst image stays below ``QUALITY_BARS_DB[precision]``.
    """
    say = progress or (lambda msg: None)
    plan = plan_build(bundle_path, backend, precision, calibration=calibration, calibration_size=calibration_size,
                      keep_float=keep_float, threads=threads, label_convs=label_convs)
    notes = first_notes(plan)
    start = time.perf_counter()
    calib = calibration_once(plan, say)
    with engine_source(plan.bundle, plan.label_convs, say) as source, atomic_dir(plan.folder) as tmp:
        plan = replace(plan, source=source)
        ref = reference_outputs(plan, held_out_seeds, say)
        groups = group_sizes(plan)
        ladder = escalation_ladder(plan.keep, plan.precision, escalate)
        climb = climb_ladder(ladder, groups, plan.bar,
                             partial(measure_step, plan, ref, tmp, calib, say, len(ladder) > 1), say)
        if plan.precision == "int8" and escalate:
            notes["escalation"] = escalation_notes(climb.steps, plan.bar, plan.keep, groups)
        gate_quality(plan, climb.quality, notes)
        out = adopt_candidate(climb.candidate, tmp)
        if climb.candidate.quantization is not None:
            notes["quantization"] = climb.candidate.quantization
        first_call_ms = _time_ms(climb.candidate.run, ref.items[0].feeds)
        quality = quality_record(plan, ref, climb.quality, climb.candidate.run, say)
        speed = time_engine(plan, ref, climb.candidate, first_call_ms, time_runs, say)
        files = {"model": f"engines/{plan.key}/{out.name}"}
    return write_record(plan, files, quality, speed, notes, build_s=round(time.perf_counter() - start, 1))


def _load_graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False)
