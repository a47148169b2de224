"""Preview sessions (``tol > 0``): image quality and work saved against the full pass.

    python -m benchmarks.edit_preview [--preset spade-ade20k] [--size full|ci] [--bundles DIR]
        [--tols 0,0.001,0.01,0.03,0.1,1e6] [--fractions 0.005,0.02] [--runs 3] [--threads 1] [--drift-tols 0.01,0.03]

Per tolerance and brush stroke (:mod:`benchmarks.edits`) of the preset's sample map: a
session on the map, then ``--runs`` rounds of (update to the stroked map, update back). The
first round's 8-bit image against the full pass of the stroked map (PSNR, largest level
difference) and its stats (main path's multiply-adds redone); CPU time (``process_time``,
all threads) of the update, median of the rounds, beside the full pass's. ``stale``: the
unedited image against that full pass; tol 1e6 redoes only the tiles the edit reaches
(SIGE's scheme). Drift: ``--strokes`` successive strokes of each size in one session per
``--drift-tols`` value, against the full pass of the map so far after 1, 5 and 10.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.edit_bench import bundle_path, feeds_for, label_maps, meta, timed  # noqa: E402
from benchmarks.edits import brush_stroke, changed_fraction  # noqa: E402

NAMES, CHECKPOINTS = ["image_u8"], (1, 5, 10)


def quality(got: Any, ref: Any) -> dict[str, float]:
    """PSNR (dB, 8-bit) and the largest level difference of ``got`` against ``ref``."""
    from sdk.train.metrics.image_quality import psnr

    return {"psnr_db": round(float(psnr(got, ref)), 2), "max_levels": int(np.abs(got.astype(int) - ref).max())}


def measure(runner: Any, base: dict, edited: dict, ref: Any, tol: float, runs: int) -> dict[str, Any]:
    """One session at ``tol``: quality and stats of the first update, CPU time over ``runs``."""
    sess = runner.edit_session(base, outputs=NAMES, tol=tol)
    cpu, first = [], None
    for _ in range(runs):
        (got, stats), _, cpu_ms = timed(lambda: sess.update(edited))
        cpu.append(cpu_ms)
        if first is None:
            first = {**quality(got["image_u8"], ref), "main_recomputed": round(stats["main_recomputed"], 4),
                     "label_recomputed": round(stats["recomputed"], 4), "incremental": stats["incremental"]}
        sess.update(base)
    return {**first, "update_cpu_ms": round(statistics.median(cpu), 1), "update_cpu_ms_all": [round(c, 1) for c in cpu]}


def stroke_rows(runner: Any, ids: Any, fraction: float, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every tolerance on one stroke of ``fraction`` of the map, and the stale row."""
    classes = int(runner.bundle.num_classes)
    new = brush_stroke(ids, fraction, classes, seed=1)
    base, edited = feeds_for(runner, ids), feeds_for(runner, new)
    full = [timed(lambda: runner.run(edited, outputs=NAMES)) for _ in range(args.runs)]
    ref, full_cpu = full[0][0]["image_u8"], statistics.median(f[2] for f in full)
    head = {"stroke": fraction, "changed": round(changed_fraction(ids, new), 4), "full_cpu_ms": round(full_cpu, 1)}
    rows = [{**head, "tol": "stale", **quality(runner.run(base, outputs=NAMES)["image_u8"], ref)}]
    for tol in args.tols:
        row = {**head, "tol": tol, **measure(runner, base, edited, ref, tol, args.runs)}
        row["speedup_cpu"] = round(full_cpu / row["update_cpu_ms"], 2)
        rows.append(row)
        print(f"[edit_preview] stroke {fraction:.1%} tol {tol:g}: {row['psnr_db']} dB, {row['max_levels']} levels, "
              f"main {row['main_recomputed']:.1%}, {row['update_cpu_ms']:.0f} vs {full_cpu:.0f} ms CPU", flush=True)
    return rows


def drift(runner: Any, ids: Any, tol: float, fraction: float, strokes: int) -> list[dict[str, Any]]:
    """``strokes`` successive strokes of ``fraction`` in one session; quality at the checkpoints,
    beside a fresh session's single update to the same map (the same edit without the history)."""
    sess = runner.edit_session(feeds_for(runner, ids), outputs=NAMES, tol=tol)
    rows, cur, main = [], ids, []
    for k in range(1, strokes + 1):
        cur = brush_stroke(cur, fraction, int(runner.bundle.num_classes), seed=100 + k)
        got, stats = sess.update(feeds := feeds_for(runner, cur))
        main.append(round(stats["main_recomputed"], 4))
        if k in CHECKPOINTS or k == strokes:
            ref = runner.run(feeds, outputs=NAMES)["image_u8"]
            fresh = runner.edit_session(feeds_for(runner, ids), outputs=NAMES, tol=tol)
            once = quality(fresh.update(feeds)[0]["image_u8"], ref)["psnr_db"]
            rows.append({"tol": tol, "stroke": fraction, "strokes": k, "changed_total": round(changed_fraction(ids, cur), 4),
                         **quality(got["image_u8"], ref), "main_by_stroke": list(main),
                         "one_update_psnr_db": once, "stale_psnr_db": quality(sess.last["image_u8"], ref)["psnr_db"]})
            print(f"[edit_preview] drift {fraction:.1%} tol {tol:g} after {k}: {rows[-1]['psnr_db']} dB", flush=True)
    sess.close()
    return rows


def write(out: Path, info: dict, rows: list[dict], drifts: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": info, "rows": rows, "drift": drifts}, indent=1))
    lines = [f"# Preview sessions: quality and work against the full pass ({info['date']})", "",
             f"{info['preset']} ({info['size']} size, {info['map']} map, random weights with calibrated batch "
             f"norm), {info['machine']}, {info['threads']} thread(s), torch {info['torch']}, FP32. CPU time: "
             f"process time of the call, all threads (wall time on this loaded machine is not comparable).", "",
             info["note"], "", "| stroke | tol | PSNR dB | max levels | main path redone | label branches redone "
             "| update CPU ms | full pass CPU ms | speed-up (CPU) |", "|---" * 9 + "|"]
    for r in rows:  # a stale row has no session: its work columns stay empty
        work = "| | | |" if r["tol"] == "stale" else (f"| {r['main_recomputed']:.1%} | {r['label_recomputed']:.1%} | "
                                                      f"{r['update_cpu_ms']:.0f} |")
        lines.append(f"| {r['stroke']:.1%} | {r['tol']:{'s' if r['tol'] == 'stale' else 'g'}} | {r['psnr_db']} | {r['max_levels']} {work} "
                     f"{r['full_cpu_ms']:.0f} | {r.get('speedup_cpu', '')} |")
    lines += ["", "Drift: successive strokes in one session, against the full pass of the map so far (main path "
              "redone: each stroke's, in order):", "", "| stroke | tol | strokes | pixels changed in all | PSNR dB | "
              "max levels | main path redone | PSNR dB, one update | stale PSNR dB |", "|---" * 9 + "|"]
    lines += [f"| {d['stroke']:.1%} | {d['tol']:g} | {d['strokes']} | {d['changed_total']:.1%} | {d['psnr_db']} | "
              f"{d['max_levels']} | {' '.join(f'{m:.0%}' for m in d['main_by_stroke'])} | {d['one_update_psnr_db']} | "
              f"{d['stale_psnr_db']} |" for d in drifts]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.edit_preview", description=__doc__.split("\n\n")[0])
    for flag, default in (("--preset", "spade-ade20k"), ("--size", "full"), ("--map", "sample"), ("--note", ""),
                          ("--tols", "0,0.001,0.01,0.03,0.1,1e6"), ("--fractions", "0.005,0.02"), ("--drift-tols", "0.01,0.03")):
        p.add_argument(flag, default=default)
    for flag, number in (("--strokes", 10), ("--runs", 3), ("--threads", 1)):
        p.add_argument(flag, type=int, default=number)
    p.add_argument("--out", default=f"benchmarks/results/edit-preview-{datetime.date.today().isoformat()}")
    p.add_argument("--bundles", default=None, help="folder of exported bundles (read; default OUT/bundles)")
    args = p.parse_args(argv)
    if args.size not in ("full", "ci"):
        p.error(f"--size {args.size}: use full or ci")
    args.tols, args.fractions = ([float(x) for x in s.split(",") if x] for s in (args.tols, args.fractions))
    args.out, args.device, args.precision, args.warmup = Path(args.out), "cpu", "fp32", 0  # meta() reads these
    from sdk import Bundle
    from sdk.train.deploy.runner import TorchRunner

    bundle = Bundle(bundle_path(args.preset, args.size, Path(args.bundles) if args.bundles else args.out / "bundles"))
    runner = TorchRunner(bundle, device="cpu", compile=False, cuda_graphs=False, threads=args.threads)
    ids = label_maps(bundle, [args.map])[args.map]
    rows = [r for f in args.fractions for r in stroke_rows(runner, ids, f, args)]
    drifts = [d for f in args.fractions for t in args.drift_tols.split(",") if t
              for d in drift(runner, ids, float(t), f, args.strokes)]
    write(args.out, {**meta(args), "preset": args.preset, "map": args.map}, rows, drifts)
    print(f"[edit_preview] wrote {args.out}/results.json, results.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
