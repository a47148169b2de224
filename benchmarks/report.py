"""Compare the papers' efficiency claims (``paper_claims.json``) with our counts.

    python benchmarks/report.py [--latency runs/latency/results.json] [--out runs/claims]

Parameter counts come from the registry (every parameter of the deployed networks,
built on the meta device), TFLOPs from ``sdk.train.models.flops.graph_flops``
(FlopCounterMode, conv + matmul, MAC = 2 FLOPs, batch 1, the preset's resolution).
Speed and memory claims are compared only with measurements from a latency run
(``benchmarks/latency.py``) at full size and batch 1 (the fastest backend's record);
without one they are reported as not measured. A paper's hardware is not ours, so a
speed comparison says how far apart the numbers are, not which implementation is faster.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLAIMS = Path(__file__).with_name("paper_claims.json")


def load_claims(path: str | Path = CLAIMS) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())["claims"]


def our_params(model: str) -> int:
    import torch

    from sdk.train.models import get_preset
    from sdk.train.models.flops import count_params

    with torch.device("meta"):
        return count_params(get_preset(model).build())


def our_tflops(model: str) -> float:
    from sdk.train.models.flops import graph_flops

    return graph_flops(model) / 1e12


def fastest(records: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """The fastest full-size batch-1 measurement of ``model`` in a latency run."""
    ok = [r for r in records if r["model"] == model and r["batch"] == 1 and r["status"] == "ok"
          and not r["reduced_size"] and r["median_ms"] is not None]
    return min(ok, key=lambda r: r["median_ms"]) if ok else None


def ours_for(claim: dict[str, Any], records: list[dict[str, Any]]) -> tuple[float | None, str]:
    """(our value, where it comes from) for one claim."""
    metric, model = claim["metric"], claim["model"]
    if metric == "params":
        return float(our_params(model)), "registry, all parameters of the deployed networks"
    if metric == "tflops":
        return our_tflops(model), "FlopCounterMode, conv + matmul, MAC = 2, batch 1"
    rec = fastest(records, model)
    if rec is None:
        return None, "not measured (run benchmarks/latency.py at full size on the claim's GPU class)"
    where = f"{rec['backend']} {rec['precision']} on {rec['device']}"
    if metric == "images_per_s":
        return rec["images_per_s"], where
    if metric == "seconds_per_image":
        return rec["median_ms"] / 1e3, where
    if metric == "memory_gb":
        return (None if rec["peak_memory_mb"] is None else rec["peak_memory_mb"] / 1024), f"{where}, {rec['memory_method']}"
    if metric == "speedup":
        base = fastest(records, claim["baseline"])
        if base is None:
            return None, f"baseline {claim['baseline']} not measured"
        return base["median_ms"] / rec["median_ms"], f"{where} vs {base['backend']} {base['precision']}"
    raise ValueError(f"unknown metric {metric!r} in paper_claims.json")


def compare(claims: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim: claim, ours, relative difference (ours / claim - 1), why."""
    rows = []
    for c in claims:
        ours, source = ours_for(c, records)
        diff = None if ours is None else ours / c["value"] - 1
        rows.append({"id": c["id"], "model": c["model"], "metric": c["metric"], "claim": c["value"],
                     "unit": c["unit"], "ours": ours, "relative_difference": diff, "ours_source": source,
                     "hardware": c.get("hardware"), "why": c.get("why", "")})
    return rows


def _fmt(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if metric == "params":
        return f"{v / 1e6:.1f}M"
    return f"{v:.3g}"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# Paper claims vs our counts", "",
             "| claim | model | metric | paper | ours | difference | source of ours | why |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        diff = "-" if r["relative_difference"] is None else f"{r['relative_difference']:+.1%}"
        lines.append(f"| {r['id']} | {r['model']} | {r['metric']} | {_fmt(r['claim'], r['metric'])} | "
                     f"{_fmt(r['ours'], r['metric'])} | {diff} | {r['ours_source']} | {r['why']} |")
    lines += ["", "Hardware of the papers' speed and memory figures is recorded in paper_claims.json "
              "(null where not checked); ours differs, so speed differences are not like-for-like.", ""]
    return "\n".join(lines)


README_START, README_END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"


def perf_table(results: dict[str, Any], source: str) -> str:
    """Markdown: per model, size and batch, torch-eager FP32 and every other measured
    backend / precision as ``ms (speed-up over eager)``."""
    groups: dict[tuple, dict[str, float]] = {}
    columns: list[str] = []
    for r in results["records"]:
        if r["status"] != "ok":
            continue
        col = f"{r['backend']} {r['precision']}" + (" (device I/O)" if r.get("io") == "device" else "")
        groups.setdefault((r["model"], r["height"], r["width"], r["batch"]), {})[col] = r["median_ms"]
        if col != "torch-eager fp32" and col not in columns:
            columns.append(col)
    runs = max((r["runs"] for r in results["records"] if r["status"] == "ok"), default=0)
    lines = [f"Measured on {results['device']} (torch {results['torch']}){', reduced sizes' if results['quick'] else ''}; "
             f"median ms of {runs} calls after warm-up, (speed-up over torch eager FP32); "
             f"generated from `{source}` by `benchmarks/report.py --readme`.", "",
             "| model | HxW | batch | torch-eager fp32 | " + " | ".join(columns) + " |",
             "|---|---|---:|---:|" + "---:|" * len(columns)]
    for (model, h, w, batch), times in groups.items():
        eager = times.get("torch-eager fp32")
        cells = []
        for col in columns:
            ms = times.get(col)
            cells.append("-" if ms is None else f"{ms:.1f}" + ("" if eager is None else f" ({eager / ms:.2f}x)"))
        lines.append(f"| {model} | {h}x{w} | {batch} | {'-' if eager is None else f'{eager:.1f}'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str, start: str = README_START, end: str = README_END) -> None:
    """Replace the text between the ``start`` / ``end`` markers of ``readme`` (atomically)."""
    from sdk.atomic import write_bytes_atomic

    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    write_bytes_atomic(readme, f"{head}{start}\n{table}\n{end}{tail}".encode())


CPU_README_START, CPU_README_END = "<!-- cpu-table:start -->", "<!-- cpu-table:end -->"
CPU_TARGETS = {"models": ("spade-cityscapes", "spade-ade20k", "oasis-ade20k", "groupdnet-deepfashion", "dpsims-ade20k"),
               "speedup": 3.0, "worst_psnr_db": 35.0, "demo": "spade-demo-street"}
"""Issue 25 (after issue 13): at full size, batch 1, what ``auto`` picks for these presets
at least ``speedup`` x onnxruntime FP32 of the same run and at least ``worst_psnr_db`` on
its worst held-out image; no preset's pick below its bar nor slower than onnxruntime FP32
(the demo included); every INT8 engine's calibration saw every class."""


def _cpu_rows(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r["status"] == "ok" and r.get("io", "host") == "host":
            groups.setdefault((r["model"], r["height"], r["width"], r["batch"]), {})[
                f"{r['backend']} {r['precision']}"] = r
    return groups


def _quality(r: dict[str, Any]) -> dict[str, Any]:
    return (r.get("extra") or {}).get("quality_vs_fp32") or {}


def _quality_cell(r: dict[str, Any]) -> str:
    q = _quality(r)
    if not q:
        return ""
    if "worst_psnr_db" not in q:  # a record from before held-out worst images
        return f", {q['psnr_db']:.1f} dB"
    kept = ((r.get("extra") or {}).get("escalation") or {}).get("kept_float_groups")
    return f", {q['worst_psnr_db']:.1f} / {q['mean_psnr_db']:.1f} dB" + (f" ({'+'.join(kept)} float)" if kept else "")


def _pick(results: dict[str, Any], model: str, h: int, w: int) -> str | None:
    return (results.get("auto_picks") or {}).get(f"{model} {h}x{w}")


def cpu_table(results: dict[str, Any], source: str) -> str:
    """Markdown: per model, onnxruntime FP32 and every CPU engine as ``ms (speed-up over
    onnxruntime FP32), worst / mean PSNR on the held-out set (groups kept float)``, and what
    ``auto`` picks; engines not written (below their bar) as ``-``."""
    records = results["records"]
    groups = _cpu_rows(records)
    columns = [c for c in dict.fromkeys(f"{r['backend']} {r['precision']}" for r in records
                                        if r["status"] == "ok" and r["backend"] != "onnxruntime")]
    runs = max((r["runs"] for r in records if r["status"] == "ok"), default=0)
    inputs = next((r["extra"]["quality_inputs"] for r in records if (r.get("extra") or {}).get("quality_inputs")), None)
    lines = [f"Measured on {results['device']}{', reduced sizes' if results.get('quick') else ''}; median ms of "
             f"{runs} calls after warm-up (class ids in, 8-bit image out, batch as listed), (speed-up over "
             f"onnxruntime FP32 of the same run; build: the engine's speed-up measured at its build, engine and "
             f"onnxruntime FP32 in alternating blocks, which a drifting load weighs on alike), PSNR of the 8-bit "
             f"image against the FP32 graph recorded at the "
             f"engine's build: worst image / mean"
             + (f" on the {inputs}" if inputs else "") + "; groups kept float to meet the bar in brackets; "
             f"auto: what `backend=\"auto\"` runs (the fastest engine whose worst image meets its bar); generated "
             f"from `{source}` by `benchmarks/report.py --cpu-readme`.", "",
             "| model | HxW | batch | onnxruntime fp32 | " + " | ".join(columns) + " | auto |",
             "|---|---|---:|---:|" + "---:|" * len(columns) + "---|"]
    for (model, h, w, batch), row in groups.items():
        base = row.get("onnxruntime fp32")
        cells = []
        for col in columns:
            r = row.get(col)
            if r is None:
                cells.append("-")
                continue
            sp = None if base is None else base["median_ms"] / r["median_ms"]
            abba = ((r.get("extra") or {}).get("build_speed") or {}).get("speedup")
            speed = ", ".join(x for x in (None if sp is None else f"{sp:.2f}x",
                                          None if abba is None else f"build {abba:.2f}x") if x)
            cells.append(f"{r['median_ms']:.1f}" + (f" ({speed})" if speed else "") + _quality_cell(r))
        pick = _pick(results, model, h, w) or "-"
        base_ms = "-" if base is None else f"{base['median_ms']:.1f}"
        lines.append(f"| {model} | {h}x{w} | {batch} | {base_ms} | " + " | ".join(cells) + f" | {pick} |")
    return "\n".join(lines)


def check_cpu_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per CPU target (:data:`CPU_TARGETS`): measured, met or not (None: not measured)."""
    records = results["records"]
    groups = _cpu_rows([r for r in records if not r["reduced_size"] and r["batch"] == 1])
    measured = {k[0] for k in groups}
    rows = [{"target": f"{model}: auto's pick >= {CPU_TARGETS['speedup']:g}x onnxruntime FP32 and >= "
                       f"{CPU_TARGETS['worst_psnr_db']:g} dB on its worst held-out image", "measured": None, "met": None}
            for model in CPU_TARGETS["models"] if model not in measured]
    for (model, h, w, _), row in sorted(groups.items()):
        base = row.get("onnxruntime fp32")
        pick = _pick(results, model, h, w)
        r = row.get(pick) if pick else None
        sp = None if base is None or r is None else base["median_ms"] / r["median_ms"]
        worst = _quality(r).get("worst_psnr_db") if r is not None and pick != "onnxruntime fp32" else None
        what = None if sp is None else f"{sp:.2f}x ({pick}{_quality_cell(r)})"
        if model in CPU_TARGETS["models"]:
            rows.append({"target": f"{model}: auto's pick >= {CPU_TARGETS['speedup']:g}x onnxruntime FP32 and >= "
                                   f"{CPU_TARGETS['worst_psnr_db']:g} dB on its worst held-out image",
                         "measured": what, "met": None if sp is None else
                         sp >= CPU_TARGETS["speedup"] and worst is not None and worst >= CPU_TARGETS["worst_psnr_db"]})
        bar = _quality(r).get("worst_psnr_db") if r is not None else None
        rows.append({"target": f"{model}: auto's pick meets its bar and is not slower than onnxruntime FP32"
                               + (" (the demo bundle)" if model == CPU_TARGETS["demo"] else ""),
                     "measured": what, "met": None if sp is None else sp >= 1.0 and (
                         pick == "onnxruntime fp32" or (bar is not None and bar >= r["extra"]["quality_bar_psnr_db"]))})
        seen = [(c, (e.get("extra") or {}).get("calibration_classes")) for c, e in row.items() if c.endswith("int8")]
        seen = [(c, s) for c, s in seen if s]
        if seen:
            missing = sorted({m for _, s in seen for m in s["missing"]})
            rows.append({"target": f"{model}: INT8 calibration sees every class",
                         "measured": f"{min(s['seen'] for _, s in seen)} of {seen[0][1]['classes']} classes"
                                     + (f", missing {missing[:10]}" if missing else ""), "met": not missing})
    return rows


def cpu_summary(results: dict[str, Any], quick: bool = False) -> str:
    """SUMMARY.md of a CPU latency run: the targets, met or not, and the table."""
    mark = {True: "met", False: "NOT met", None: "not measured"}
    records = results["records"]
    size = ("reduced (CI) sizes: the targets, set at full size, are not measured by this run" if quick
            else "targets of issue 25 at full size, batch 1")
    lines = ["# CPU engines", "", f"Device: {results['device']}; {size}.", "",
             "| target | measured | |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured'] or '-'} | {mark[r['met']]} |" for r in check_cpu_targets(results)]
    lines += ["", cpu_table({**results, "quick": quick}, "results.json"), "",
              "Skipped configurations (an engine below its quality bar says so):", ""]
    lines += [f"- {r['model']} {r['backend']} {r['precision']}: {r['status']}" for r in records if r["status"] != "ok"]
    return "\n".join(lines) + "\n"


# -- GPU targets (gpu_check.sh) ---------------------------------------------------------
GPU_TARGETS = {"model": "spade-cityscapes", "batch_1_ms": 2.0, "batch_8_ms": 9.0, "vs_reference_host": 1.4,
               "vs_reference_device": 1.0, "device_efficiency_batch_8": 0.5}
"""The GPU path's targets (issue 20) at full size: spade-cityscapes end to end (host class
ids in, host 8-bit image out) within these times and at least ``vs_reference_host`` x
``reference-host``; device-resident at least ``vs_reference_device`` x ``reference-device``
at batch 1 and 8; device-resident batch 8 at this fraction of the measured roofline
(issue 14's target); every other preset measured faster than its references."""


def check_targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target: what was asked, what was measured, met or not (None: not measured).
    Each speed-up is over the reference of the same kind of row (end to end over
    ``reference-host``, device-resident over ``reference-device``) at the same precision."""
    ok = [r for r in records if r["status"] == "ok" and not r["reduced_size"]
          and not r["backend"].startswith("reference")]

    def best(model: str, batch: int, io: str) -> dict[str, Any] | None:
        rows = [r for r in ok if r["model"] == model and r["batch"] == batch and r.get("io", "host") == io]
        return min(rows, key=lambda r: r["median_ms"]) if rows else None

    def vs(r: dict[str, Any] | None, want: float, strict: bool = False) -> tuple[str | None, bool | None]:
        sp = None if r is None else r.get("speedup_vs_reference")
        if sp is None:
            return None, None
        return f"{sp:.2f}x ({r['backend']} {r['precision']})", sp > want if strict else sp >= want

    t = GPU_TARGETS
    rows = []
    for batch in (1, 8):
        r = best(t["model"], batch, "host")
        limit = t[f"batch_{batch}_ms"]
        rows.append({"target": f"{t['model']} batch {batch} end to end <= {limit} ms",
                     "measured": None if r is None else f"{r['median_ms']:.2f} ms ({r['backend']} {r['precision']})",
                     "met": None if r is None else r["median_ms"] <= limit})
        measured, met = vs(r, t["vs_reference_host"])
        rows.append({"target": f"{t['model']} batch {batch} end to end >= {t['vs_reference_host']}x reference-host",
                     "measured": measured, "met": met})
        measured, met = vs(best(t["model"], batch, "device"), t["vs_reference_device"])
        rows.append({"target": f"{t['model']} batch {batch} device-resident >= {t['vs_reference_device']}x "
                               f"reference-device", "measured": measured, "met": met})
    r = best(t["model"], 8, "device")
    eff = None if r is None else r.get("efficiency")
    rows.append({"target": f"{t['model']} batch 8 device-resident >= {t['device_efficiency_batch_8']:.0%} of the "
                           f"measured roofline", "measured": None if eff is None else f"{eff:.1%}",
                 "met": None if eff is None else eff >= t["device_efficiency_batch_8"]})
    for model in sorted({r["model"] for r in ok} - {t["model"]}):
        for batch in (1, 8):
            for io, ref in (("host", "reference-host"), ("device", "reference-device")):
                measured, met = vs(best(model, batch, io), 1.0, strict=True)
                rows.append({"target": f"{model} batch {batch} {'end to end' if io == 'host' else 'device-resident'} "
                                       f"faster than {ref}", "measured": measured, "met": met})
    return rows


def gpu_summary(results: dict[str, Any], notes: Sequence[str] = ()) -> str:
    """SUMMARY.md of a GPU check (``gpu_check.sh``): the targets met or not, the parity
    figures, TF32 per kind of row, and every configuration that did not run."""
    records = results.get("records", [])
    mark = {True: "met", False: "NOT met", None: "not measured"}
    lines = ["# GPU check", ""] + [f"{n}  " for n in notes if n] + [
        "", f"Device: {results.get('device')}, torch {results.get('torch')}"
            + (", reduced (CI) sizes: the full-size targets are not measured by this run" if results.get("quick")
               or any(r["reduced_size"] for r in records) else "") + ".", ""]
    ceilings = results.get("roofline_ceilings")
    if ceilings:
        peaks = ", ".join(f"{p} {ceilings[f'{p}_tflops']:.0f} TFLOP/s" for p in ("fp16", "bf16", "tf32", "fp32")
                          if ceilings.get(f"{p}_tflops"))
        lines += [f"Roofline ceilings measured in the run: {peaks}; copy {ceilings['bandwidth_gbs']:.0f} GB/s.", ""]
    lines += ["| target | measured | |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured'] or '-'} | {mark[r['met']]} |" for r in check_targets(records)]
    parity = results.get("parity", [])
    if parity:
        lines += ["", "| parity (torch runner vs FP32, TF32 off) | relative L2 | 8-bit max levels |", "|---|---:|---:|"]
        for p in parity:
            lines.append(f"| {p['model']} {p['precision']} | "
                         + (f"error: {p['error']} | - |" if "error" in p else
                            f"{p['relative_l2']:.2e} | {p['u8_max_levels']} |"))
    tf32 = sorted({(r["backend"], r["precision"], r.get("tf32")) for r in records if r.get("tf32") is not None})
    if tf32:
        lines += ["", "TF32 allowed by torch: " + "; ".join(f"{b} {p}: {'on' if t else 'off'}" for b, p, t in tf32)
                  + " (results.md states it per row)."]
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Not measured:", ""]
        lines += [f"- {r['model']} {r['backend']} {r['precision']} {r.get('io', 'host')} batch {r['batch']}: "
                  f"{r['status']}" for r in failed]
    lines += ["", "All rows: results.md; raw records: results.json; everything printed: gpu_check.log.", ""]
    return "\n".join(lines)


def write_gpu_summary(folder: Path, notes: Sequence[str] = ()) -> Path:
    """``folder/SUMMARY.md`` from ``folder/results.json`` (an empty run if there is none yet)."""
    from sdk.atomic import write_bytes_atomic

    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {"records": []}
    out = folder / "SUMMARY.md"
    write_bytes_atomic(out, gpu_summary(results, notes).encode())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compare paper efficiency claims with our counts.")
    p.add_argument("--summary", help="folder of a GPU check (gpu_check.sh): write its SUMMARY.md (the GPU "
                                     "targets, met or not) from its results.json, and print it")
    p.add_argument("--note", action="append", default=[], help="with --summary: a line for SUMMARY.md (repeatable)")
    p.add_argument("--claims", default=str(CLAIMS))
    p.add_argument("--latency", help="results.json of a latency run (for speed / memory claims)")
    p.add_argument("--out", help="folder for claims.json and claims.md (default: print Markdown)")
    p.add_argument("--readme", help="with --latency: rewrite the performance table of this page "
                                    "(docs/measurements.md) from the run")
    p.add_argument("--cpu-readme", help="with --latency: rewrite the CPU engine table of this page "
                                        "(docs/cpu-engines.md) from the run (latency.py --device cpu)")
    args = p.parse_args(argv)
    if args.summary:
        print(write_gpu_summary(Path(args.summary), args.note).read_text())
        return 0
    if args.readme:
        if not args.latency:
            p.error("--readme needs --latency results.json")
        update_readme(Path(args.readme), perf_table(json.loads(Path(args.latency).read_text()), args.latency))
    if args.cpu_readme:
        if not args.latency:
            p.error("--cpu-readme needs --latency results.json")
        update_readme(Path(args.cpu_readme), cpu_table(json.loads(Path(args.latency).read_text()), args.latency),
                      CPU_README_START, CPU_README_END)
    records = json.loads(Path(args.latency).read_text())["records"] if args.latency else []
    rows = compare(load_claims(args.claims), records)
    md = to_markdown(rows)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "claims.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "claims.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
