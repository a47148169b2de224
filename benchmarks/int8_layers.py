"""Which node groups INT8 needs in float: what each costs in dB and in speed when quantized.

    python benchmarks/int8_layers.py --bundle bundles/groupdnet-deepfashion [--bundle ...]
        [--backend onnxruntime-int8 openvino] [--calibration-size 16] [--runs 5] [--threads 2]
        --out benchmarks/results/int8-2026-12-02/layers

For each bundle, the synthesis graph is quantized (``export.quantize``, the builder's
balanced calibration, ``export.calibration``) once per row:

* ``all INT8``: every convolution and matrix product quantized but the default float
  groups (``KEEP_FLOAT``: the last convolution, attention matmuls);
* ``+ GROUP float``: the same with one more node group of ``export.quantize.NODE_GROUPS``
  kept float (label lookups themselves are never quantized: their one-hot convolutions'
  remains are ``label_convs``);
* ``escalation``: the groups of ``ESCALATION`` kept float together;
* ``before``: ``all INT8`` calibrated as before issue 25 (:func:`regions_before`: Voronoi
  maps of 3-12 random classes each, which saw about half of ADE20K's classes), the
  figure the new calibration is compared with.

Each row runs on every ``--backend`` (the same QDQ graph: onnxruntime runs it, OpenVINO
reads it as int8), against the FP32 graph (onnxruntime) on the held-out set
(``export.quality_set``): worst and mean PSNR of the 8-bit image and the worst image's
row, then the median of ``--runs`` batch-1 calls after 2 warm-up calls (one engine at a
time: two runtimes alternating call by call slow each other), and the same for
onnxruntime FP32. Writes ``layers.json`` and ``layers.md`` (dB gained and speed lost per
group against ``all INT8``); the order of the groups by dB gained per ms is what
``export.quantize.ESCALATION`` follows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def median_ms(call: Callable[[], Any], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 2)


def regions_before(height: int, width: int, num_classes: int, seed: int) -> np.ndarray:
    """A calibration map as ``export.calibration`` made them before issue 25: a Voronoi
    partition of 6-24 cells over 3-12 random classes at a quarter of the resolution."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(num_classes, size=min(num_classes, int(rng.integers(3, 13))), replace=False)
    cells = int(rng.integers(6, 25))
    h, w = -(-height // 4), -(-width // 4)
    cy, cx = rng.uniform(0, h, cells), rng.uniform(0, w, cells)
    yy, xx = np.mgrid[0:h, 0:w]
    nearest = np.argmin((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2, axis=0)
    coarse = classes[rng.integers(0, len(classes), cells)][nearest]
    return np.kron(coarse, np.ones((4, 4), dtype=np.int64))[:height, :width].astype(np.int32)


def calibration_before(bundle: Any, count: int) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """The calibration inputs of before issue 25 (street scenes for 35-class bundles, else
    :func:`regions_before`) and their class coverage."""
    from sdk.export.calibration import coverage, feeds_for, is_street_bundle, scene_layout

    h, w = bundle.resolution
    c = int(bundle.num_classes)
    maps = [scene_layout(h, w, i) if is_street_bundle(bundle) else regions_before(h, w, c, i) for i in range(count)]
    return [feeds_for(bundle, "model", m, i) for i, m in enumerate(maps)], coverage(maps, c)


def rows_to_run(groups: dict[str, list[str]], only: Sequence[str] = ()) -> list[tuple[str, tuple[str, ...]]]:
    """(row name, kept-float groups) of the table (module docstring); with ``only``, the rows
    whose key is in it (``all``, ``before``, ``escalation`` or a group's name)."""
    from sdk.export.quantize import ESCALATION, KEEP_FLOAT, NODE_GROUPS

    rows = [("all", "all INT8", tuple(KEEP_FLOAT)),
            ("before", "before: all INT8, calibration of before issue 25", tuple(KEEP_FLOAT))]
    rows += [(g, f"+ {g} float", (*KEEP_FLOAT, g)) for g in NODE_GROUPS if g not in KEEP_FLOAT and groups[g]]
    rows.append(("escalation", "escalation (" + " + ".join(g for g in ESCALATION if groups[g]) + ")",
                 (*KEEP_FLOAT, *ESCALATION)))
    return [(name, keep) for key, name, keep in rows if not only or key in only]


def measure_bundle(path: Path, backends: Sequence[str], calibration_size: int, runs: int,
                   threads: int, only: Sequence[str] = ()) -> dict[str, Any]:
    """Every row of one bundle on every backend (module docstring)."""
    import onnx

    from sdk import Bundle
    from sdk.export.calibration import calibration_set
    from sdk.export.engine_cpu import onnxruntime_engine, openvino_engine
    from sdk.export.engine_quality import held_out_quality
    from sdk.export.quality_set import describe, held_out_set
    from sdk.export.quantize import node_groups, quantize_graph
    from sdk.manifest import Kind

    bundle = Bundle(path)
    info = bundle.graph("model")
    src = bundle.file(info.file)
    u8 = [o.name for o in info.outputs_of(Kind.IMAGE_U8)]
    floats = [o.name for o in info.outputs_of(Kind.IMAGE)]
    labels = [s.name for s in info.inputs if s.kind in (Kind.LABEL, Kind.INSTANCE_EDGE)]
    groups = node_groups(onnx.load(str(src), load_external_data=False), labels)
    items = held_out_set(bundle)
    names, kinds = [i.name for i in items], [i.row for i in items]
    print(f"[int8_layers] {bundle.name}: {describe(items)}", flush=True)
    fp32 = onnxruntime_engine(src, threads)
    reference = [{k: v for k, v in fp32(i.feeds).items() if k in u8 + floats} for i in items]
    feeds = items[0].feeds
    out: dict[str, Any] = {"model": bundle.name, "resolution": bundle.resolution,
                           "node_groups": {g: len(v) for g, v in groups.items()},
                           "onnxruntime_fp32_ms": median_ms(lambda: fp32(feeds), runs), "rows": []}
    calib, classes = calibration_set(bundle, "procedural", calibration_size)
    out["calibration_classes"] = classes
    before, out["calibration_classes_before"] = calibration_before(bundle, calibration_size)
    with tempfile.TemporaryDirectory(prefix="int8-layers-") as tmp:
        for row, keep in rows_to_run(groups, only):
            qdq = Path(tmp) / "model.qdq.onnx"
            t0 = time.perf_counter()
            notes = quantize_graph(src, qdq, before if row.startswith("before") else calib, keep_float=keep,
                                   label_inputs=labels)
            entry: dict[str, Any] = {"row": row, "kept_float": list(keep), "quantized_nodes": notes["quantized_nodes"],
                                     "float_nodes": len(notes["kept_float_nodes"]),
                                     "quantize_s": round(time.perf_counter() - t0, 1)}
            for backend in backends:
                run = (onnxruntime_engine(qdq, threads) if backend == "onnxruntime-int8"
                       else openvino_engine(qdq, "int8", threads))
                got = [{k: v for k, v in run(i.feeds).items() if k in u8 + floats} for i in items]
                q = held_out_quality(reference, got, names, kinds, u8, floats)
                entry[backend] = {"worst_psnr_db": q["model"]["worst_psnr_db"], "worst_image": q["model"]["worst_image"],
                                  "mean_psnr_db": q["model"]["mean_psnr_db"],
                                  "rows": {k: {"worst": v["worst_psnr_db"], "mean": v["mean_psnr_db"]}
                                           for k, v in q["rows"].items()},
                                  "median_ms": median_ms(lambda: run(feeds), runs)}
                print(f"[int8_layers] {bundle.name} {backend} {row}: worst {entry[backend]['worst_psnr_db']} dB "
                      f"({entry[backend]['worst_image']}), mean {entry[backend]['mean_psnr_db']} dB, "
                      f"{entry[backend]['median_ms']} ms", flush=True)
                run = None  # free this engine before the next one loads
            out["rows"].append(entry)
    return out


def to_markdown(results: list[dict[str, Any]], backends: Sequence[str], header: str) -> str:
    lines = [header, ""]
    for res in results:
        base = res["rows"][0]
        lines += [f"### {res['model']} ({res['resolution'][0]}x{res['resolution'][1]}; onnxruntime FP32 "
                  f"{res['onnxruntime_fp32_ms']:.0f} ms; nodes per group: "
                  + ", ".join(f"{g} {n}" for g, n in res["node_groups"].items()) + ")", "",
                  "| row | float nodes | " + " | ".join(f"{b} worst / mean dB (worst map) | {b} ms (vs all INT8)"
                                                         for b in backends) + " |",
                  "|---|---:|" + "---|---:|" * len(backends)]
        for entry in res["rows"]:
            cells = []
            for b in backends:
                e, b0 = entry[b], base[b]
                gain = e["worst_psnr_db"] - b0["worst_psnr_db"]
                cells.append(f"{e['worst_psnr_db']:.1f} / {e['mean_psnr_db']:.1f} ({e['worst_image']})"
                             + ("" if entry is base else f", {gain:+.1f}"))
                cells.append(f"{e['median_ms']:.0f}" + ("" if entry is base else
                                                        f" ({e['median_ms'] / b0['median_ms']:.2f}x)"))
            lines.append(f"| {entry['row']} | {entry['float_nodes']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", action="append", required=True, help="bundle folder (repeatable)")
    p.add_argument("--backend", nargs="+", default=["onnxruntime-int8", "openvino"],
                   choices=("onnxruntime-int8", "openvino"))
    p.add_argument("--calibration-size", type=int, default=16)
    p.add_argument("--runs", type=int, default=5, help="timed batch-1 calls per row and backend (after 2 warm-up)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", required=True, help="folder for layers.json and layers.md")
    p.add_argument("--note", default="", help="a line about the machine's load, written into the results")
    p.add_argument("--rows", nargs="*", default=(),
                   help="only these rows: all, before, escalation and/or group names (default every row)")
    args = p.parse_args(argv)
    from sdk.engines import cpu_device

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} {cpu_device()}, {args.threads} threads, "
              f"batch 1, median of {args.runs} calls after 2 warm-up; PSNR of the 8-bit image against the FP32 graph "
              f"on the held-out set (worst image / mean), calibration: {args.calibration_size} balanced procedural "
              f"maps. {args.note}".strip())
    results = []
    for bundle in args.bundle:
        results.append(measure_bundle(Path(bundle), args.backend, args.calibration_size, args.runs, args.threads,
                                      args.rows))
        (out / "layers.json").write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
        (out / "layers.md").write_text(to_markdown(results, args.backend, header) + "\n")
    print(to_markdown(results, args.backend, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
