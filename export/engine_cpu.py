"""CPU engines: OpenVINO (FP32 / BF16 / INT8) and onnxruntime INT8, from a bundle's ONNX graph.

``python -m export engine --backend openvino|onnxruntime-int8`` (``export.engine_build``
dispatches here; no torch needed). Stages, each with a progress line:

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

Only the synthesis graph (``model``) gets an engine file; other graphs (a style encoder)
run the bundle's FP32 ONNX in the same runtime.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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
from sdk.export.quality_set import SEEDS_PER_ROW, HeldOutItem, describe, held_out_set
from sdk.export.quantize import ESCALATION, KEEP_FLOAT, node_groups, quantize_graph

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


def reusable_int8_graph(bundle: Bundle, calibration: str | Path, size: int,
                        keep: tuple[str, ...]) -> tuple[dict[str, Any], Path] | None:
    """An INT8 QDQ graph already in the bundle (an onnxruntime-int8 engine) quantized by this
    onnxruntime with the same calibration (the balanced, class-covering one: a record that
    lists its calibration classes) and kept-float groups: the same file a new quantization
    would write (calibration is deterministic), so OpenVINO INT8 reuses it."""
    try:
        version = runtime_version("onnxruntime")
    except BackendError:
        return None
    for record in engines_of(bundle, "onnxruntime-int8", "int8"):
        q = (record.get("notes") or {}).get("quantization") or {}
        if (record.get("versions") == {"onnxruntime": version} and q.get("calibration") == str(calibration)
                and q.get("calibration_maps") == size and sorted(q.get("kept_float", {})) == sorted(keep)
                and "calibration_classes" in q and "reused_from" not in q):
            path = bundle.file(record["files"]["model"])
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


def break_even_calls(speed: dict[str, Any]) -> float | None:
    """Calls after which an engine has repaid its one-time cost over onnxruntime FP32 (import,
    load and a slower first call: what a one-shot command pays), from a ``speed`` record;
    None when it saves nothing per call."""
    saving = speed["onnxruntime_fp32_ms"] - speed["median_ms"]
    if saving <= 0:
        return None
    extra = (speed.get("import_ms", 0.0) + speed.get("load_ms", 0.0) + speed.get("first_call_ms", 0.0)
             - speed.get("onnxruntime_fp32_load_ms", 0.0) - speed.get("onnxruntime_fp32_first_call_ms", 0.0))
    return round(max(extra, 0.0) / saving, 1)


def is_trained_demo(bundle: Bundle) -> bool:
    """The demo bundle with learned weights (its images can be scored against the renderer)."""
    return bundle.name == "spade-demo-street" and bundle.manifest.weights.get("norm_stats") == "learned"


def check_ir_outputs(model: Any, outputs: list[dict[str, Any]]) -> None:
    """Raise if the converted IR's outputs are not of the FP32 graph's types: an INT8 IR must
    still return the float image and the in-graph 8-bit image, not quantized tensors."""
    from sdk.export.engine_build import EngineBuildError

    want = {o["name"]: {"float32": "f32", "uint8": "u8"}.get(o["dtype"], o["dtype"]) for o in outputs}
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


def _make_candidate(bundle: Bundle, backend: str, precision: str, folder: Path, keep: tuple[str, ...], *,
                    calibration: str | Path, calibration_size: int,
                    calib: Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]],
                    threads: int | None, say: Progress) -> _Candidate:
    """Quantize (INT8) or reuse, convert (OpenVINO) and load one engine into ``folder``."""
    info = bundle.graph("model")
    src = bundle.file(info["file"])
    folder.mkdir(parents=True, exist_ok=True)
    graph_file, quantization = src, None
    if precision == "int8":
        qdq = folder / ("model.qdq.onnx" if backend == "openvino" else "model.onnx")
        reuse = reusable_int8_graph(bundle, calibration, calibration_size, keep)
        if reuse is not None:
            record, path = reuse
            say(f"quantizing: reusing the INT8 graph of {record['key']} (same calibration, same quantizer)")
            shutil.copyfile(path, qdq)
            quantization = {**record["notes"]["quantization"], "reused_from": record["key"]}
        else:
            feeds, classes = calib()
            what = f"{calibration} label maps" if classes is not None else "seeded inputs"
            say(f"quantizing {info['file']}: calibrating on {calibration_size} {what}, keeping "
                f"{', '.join(keep) or 'nothing extra'} in float")
            labels = [s["name"] for s in info["inputs"] if s["kind"] in ("label", "instance_edge")]
            quantization = quantize_graph(src, qdq, feeds, keep_float=keep, label_inputs=labels)
            quantization.update({"calibration": str(calibration), "calibration_classes": classes})
        graph_file = qdq
    if backend == "openvino":
        from sdk.backends.openvino import import_openvino

        ov = import_openvino()
        out = folder / "model.xml"
        say(f"converting {graph_file.name} to an OpenVINO IR")
        converted = ov.convert_model(str(graph_file))
        check_ir_outputs(converted, info["outputs"])
        ov.save_model(converted, str(out), compress_to_fp16=False)
        if graph_file != src:
            graph_file.unlink()
        t0 = time.perf_counter()
        run = openvino_engine(out, precision, threads)
    else:
        out = graph_file
        t0 = time.perf_counter()
        run = onnxruntime_engine(out, threads)
    return _Candidate(run, out, (time.perf_counter() - t0) * 1e3, quantization)


def _outputs(run: Run, items: list[HeldOutItem], names: list[str]) -> list[dict[str, np.ndarray]]:
    return [{k: v for k, v in run(item.feeds).items() if k in names} for item in items]


def _say_quality(say: Progress, what: str, q: dict[str, Any], bar: float) -> None:
    m = q["model"]
    rows = "; ".join(f"{row} {r['worst_psnr_db']:g} / {r['mean_psnr_db']:g}" for row, r in q["rows"].items())
    say(f"{what}: worst image {m['worst_psnr_db']} dB ({m['worst_image']}), mean {m['mean_psnr_db']} dB "
        f"(bar {bar:g} on the worst image); worst / mean per row: {rows}")


def build_cpu_engine(bundle_path: str | Path, backend: str, *, precision: str, calibration: str | Path = "procedural",
                     calibration_size: int = CALIBRATION_SIZE, keep_float: Iterable[str] = KEEP_FLOAT,
                     escalate: bool = True, threads: int | None = None, held_out_seeds: int = SEEDS_PER_ROW,
                     time_runs: int = TIME_RUNS, progress: Progress | None = None) -> dict[str, Any]:
    """Build a CPU engine of ``backend`` at ``precision`` into the bundle; returns its record.

    ``keep_float``: node groups (``export.quantize.NODE_GROUPS``) INT8 leaves float from the
    start; ``escalate``: keep more (``export.quantize.ESCALATION``) while the worst held-out
    image is below the bar. Raises :class:`QualityError` (bundle unchanged) when the
    engine's worst image stays below ``QUALITY_BARS_DB[precision]``.
    """
    from sdk.export.engine_build import EngineBuildError

    say = progress or (lambda msg: None)
    if backend not in CPU_ENGINE_BACKENDS:
        raise EngineBuildError(f"{backend!r} is not a CPU engine backend; choose {' or '.join(CPU_ENGINE_BACKENDS)}")
    if precision not in BACKEND_PRECISIONS[backend]:
        raise EngineBuildError(f"{backend} builds {', '.join(BACKEND_PRECISIONS[backend])} engines, not {precision}")
    if calibration_size < 1:
        raise EngineBuildError(f"--calibration-size must be >= 1, got {calibration_size}")
    bundle = Bundle(bundle_path)
    info = bundle.graph("model")
    if info["file"] is None:
        raise EngineBuildError(f"{bundle.path} has no ONNX graph (exported with --no-onnx); CPU engines are built "
                               f"from it: re-export without --no-onnx")
    device, versions = cpu_engine_target(backend)
    key = engine_key(backend, precision, device, versions)
    keep = tuple(keep_float)
    src = bundle.file(info["file"])
    threads_used = threads or os.cpu_count() or 1
    notes: dict[str, Any] = {"threads": threads_used}
    if precision == "int8":
        notes["inference_precision"] = OPENVINO_INT8_INFERENCE if backend == "openvino" else "fp32"
    outputs = info["outputs"]
    u8 = [o["name"] for o in outputs if o["kind"] == "image_u8"]
    floats = [o["name"] for o in outputs if o["kind"] == "image"]
    bar = QUALITY_BARS_DB[precision]
    start = time.perf_counter()
    folder = bundle.path / "engines" / key
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

    with atomic_dir(folder) as tmp:
        t0 = time.perf_counter()
        fp32 = onnxruntime_engine(src, threads)
        fp32_load_ms = (time.perf_counter() - t0) * 1e3
        items = held_out_set(bundle, "model", held_out_seeds)
        first_fp32_ms = _time_ms(fp32, items[0].feeds)
        say(f"reference: the FP32 graph (onnxruntime) on the {describe(items)}")
        reference = _outputs(fp32, items, u8 + floats)
        names, rows = [i.name for i in items], [i.row for i in items]
        groups = {g: len(v) for g, v in node_groups(_load_graph(src)).items()} if precision == "int8" else {}
        ladder = [keep] + ([tuple(dict.fromkeys(keep + ESCALATION[:k + 1])) for k in range(len(ESCALATION))]
                           if precision == "int8" and escalate else [])
        steps: list[dict[str, Any]] = []
        candidate, quality = None, None
        for step, kept in enumerate(ladder):
            added = [g for g in kept if g not in (ladder[step - 1] if step else ())]
            if step and not any(groups.get(g) for g in added):
                steps.append({"kept_float": list(kept), "skipped": f"{', '.join(added)}: no such nodes in this graph"})
                continue
            if step:
                say(f"escalating: keeping {', '.join(added)} float too "
                    f"({sum(groups.get(g, 0) for g in added)} nodes) and quantizing again")
            candidate = _make_candidate(bundle, backend, precision, tmp / f"step-{step}", kept,
                                        calibration=calibration, calibration_size=calibration_size,
                                        calib=calib, threads=threads, say=say)
            say(f"checking quality: {backend} {precision} vs the FP32 graph on {len(items)} held-out inputs")
            quality = held_out_quality(reference, _outputs(candidate.run, items, u8 + floats), names, rows, u8, floats)
            _say_quality(say, "quality", quality, bar)
            entry: dict[str, Any] = {"kept_float": list(kept), "worst_psnr_db": quality["model"]["worst_psnr_db"],
                                     "worst_image": quality["model"]["worst_image"],
                                     "mean_psnr_db": quality["model"]["mean_psnr_db"]}
            if len(ladder) > 1:
                entry["median_ms"] = interleaved_medians({"e": lambda: candidate.run(items[0].feeds)},
                                                         STEP_RUNS, warmup=1)["e"]["median_ms"]
            steps.append(entry)
            if quality["model"]["worst_psnr_db"] >= bar:
                break
        assert candidate is not None and quality is not None
        if precision == "int8" and escalate:
            timed = [s for s in steps if "median_ms" in s]
            notes["escalation"] = {
                "bar_psnr_db": bar, "order": list(ESCALATION), "steps": steps,
                "kept_float_groups": [g for g in timed[-1]["kept_float"] if g not in keep and groups.get(g)],
                "node_groups": groups,
                "speed_cost": round(timed[-1]["median_ms"] / timed[0]["median_ms"], 3) if len(timed) > 1 else 1.0,
                "method": f"each step: worst / mean PSNR on the held-out set; median of {STEP_RUNS} calls after 1 "
                          f"warm-up, batch 1 (speed_cost: last step's median / the first's)"}
        worst = quality["model"]["worst_psnr_db"]
        if not worst >= bar:
            kept = notes.get("escalation", {}).get("kept_float_groups")
            tried = f" even with {', '.join(kept)} kept float" if kept else ""
            raise QualityError(f"the {backend} {precision} engine of {bundle.name} scores {worst} dB PSNR on its worst "
                               f"held-out image ({quality['model']['worst_image']}) against the FP32 graph{tried}, below "
                               f"its {bar:g} dB bar: not written (the bundle is unchanged)")
        for f in candidate.path.parent.iterdir():  # the passing step's files become the engine's
            f.rename(tmp / f.name)
        out = tmp / candidate.path.name
        for stale in tmp.glob("step-*"):
            shutil.rmtree(stale)
        if candidate.quantization is not None:
            notes["quantization"] = candidate.quantization
        engine, load_ms = candidate.run, candidate.load_ms
        first_ms = {"engine": _time_ms(engine, items[0].feeds), "fp32": first_fp32_ms}
        record_quality: dict[str, Any] = {
            "reference": "the bundle's FP32 ONNX graph on onnxruntime CPU", "inputs": describe(items),
            "metric": "8-bit image: PSNR per image (dB, peak 255): worst and mean, per row and over the set; pooled: "
                      "PSNR, max / mean absolute difference in levels; float image: relative L2",
            "bar_psnr_db": bar, "bar_on": "the worst image of the held-out set", **quality}
        label = next((s["name"] for s in info["inputs"] if s["kind"] == "label"), None)
        if is_trained_demo(bundle) and label and u8 and len(info["inputs"]) == 1:
            say("scoring against the procedural renderer on held-out scenes")
            record_quality["renderer"] = renderer_psnr({"engine": engine, "fp32": fp32}, label, u8[0],
                                                       bundle.resolution)
        feeds = items[0].feeds
        wanted = u8[:1] or None
        calls = {"engine": lambda: engine(feeds), "fp32": lambda: fp32(feeds)}
        warm = interleaved_medians(calls, 1, warmup=TIME_WARMUP - 1)  # the last warm-up call, timed
        runs = timed_runs(max(v["median_ms"] for v in warm.values()) / 1e3, least=time_runs)
        say(f"timing: {backend} {precision} vs onnxruntime FP32, batch 1, {runs} calls each in ABBA blocks, "
            f"{threads_used} threads")
        times = block_medians(calls, runs, warmup=1)
        speed = {"median_ms": times["engine"]["median_ms"], "p90_ms": times["engine"]["p90_ms"],
                 "onnxruntime_fp32_ms": times["fp32"]["median_ms"],
                 "speedup": round(times["fp32"]["median_ms"] / times["engine"]["median_ms"], 3),
                 "batch": 1, "threads": threads_used, "outputs": wanted,
                 "load_ms": round(load_ms, 1), "onnxruntime_fp32_load_ms": round(fp32_load_ms, 1),
                 "first_call_ms": round(first_ms["engine"], 1),
                 "onnxruntime_fp32_first_call_ms": round(first_ms["fp32"], 1),
                 "import_ms": round(import_ms(backend), 1), "runs": runs, "warmup": TIME_WARMUP,
                 "method": f"median of {runs} calls after {TIME_WARMUP} warm-up, engine and onnxruntime FP32 in "
                           f"ABBA blocks of {runs // 2}, 1 untimed call before each (time.perf_counter), at build; "
                           f"load: reading and compiling the graph (session creation), once; first call: the call "
                           f"right after loading; import: importing the runtime in a fresh process, beyond "
                           f"onnxruntime (which every CPU command imports)"}
        speed["break_even_calls"] = break_even_calls(speed)
        even = speed["break_even_calls"]
        repaid = ("no saving per call" if even is None else
                  f"its one-time cost (import, load, first call) repaid after {even:g} calls")
        say(f"speed: {speed['median_ms']:.3g} ms vs onnxruntime FP32 {speed['onnxruntime_fp32_ms']:.3g} ms "
            f"({speed['speedup']:.2f}x); {repaid}")
        files = {"model": f"engines/{key}/{out.name}"}
    record = engine_record(key=key, backend=backend, precision=precision, device=device, versions=versions,
                           batch=DYNAMIC_BATCH, files=files, quality=record_quality, speed=speed, notes=notes,
                           build_s=round(time.perf_counter() - start, 1))
    manifest = Bundle(bundle.path, verify=False).manifest
    manifest.engines = {**manifest.engines, key: record}
    write_manifest(bundle.path, manifest)
    return record


def _load_graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False)
