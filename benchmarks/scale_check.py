"""Every target of "beyond one process" in one command: sdk batch, sdk serve, sdk app.

    python benchmarks/scale_check.py                 # full run: 2,000 labels, ~8 min on 2 cores
    python benchmarks/scale_check.py --quick         # the same steps at toy sizes (~2 min)

Writes ``results.json`` and ``results.md`` into ``--out`` (default
``benchmarks/results/scale-<date>``), with each target met or not:

1. **batch** -- ``--labels`` procedural label maps (``train.data.procedural``) through
   the demo bundle: one process without Ray (the worker's own code, one onnxruntime
   thread), then ``sdk batch`` on a local Ray with 1 and with 2 one-CPU workers.
   Target: N-worker throughput >= 0.9 x N x the single process. Then ``python -m sdk
   batch`` with 2 workers into a fresh folder, and this script SIGKILLs one worker
   process (its pid is in the records) once a quarter of the images are recorded.
   Target: exactly ``--labels`` images and records, no duplicates, no temp files.
2. **serve** -- ``sdk serve`` (one replica, one CPU) without batching (max batch 1) and
   with dynamic batching (max batch 8), each loaded by ``benchmarks/serve_load.py`` at 1,
   8 and 32 concurrent clients (bounded: ``--requests`` and ``--duration`` per level).
   Target: batched throughput at 32 clients >= 1.5 x the batch-1 throughput (max batch
   1, one client); the ratio to max batch 1 at 32 clients is reported too.
3. **app** -- ``sdk app`` in headless chromium: ``--strokes`` strokes painted with the
   mouse; latency from pointer-up to the new image on the page against the server's
   synthesis time. Target: latency <= synthesis + 150 ms.

Throughputs count images written over the synthesis phase (from the first batch submitted
to the last image recorded; Ray start-up excluded, actor start-up included); "steady"
counts from the moment the first worker began its first batch to the end of the last one
(worker clocks: actor start-up excluded too). Both are reported against the target.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEMO = ROOT / "demo" / "spade-street"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- batch ----------------------------------------------------------------------------
def make_labels(folder: Path, n: int) -> Path:
    """``n`` procedural street label maps (kept between runs: same seeds, same maps)."""
    import numpy as np
    from PIL import Image

    from sdk.train.data.procedural import scene_label

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = folder / f"scene_{i:05d}.png"
        if not p.is_file():
            Image.fromarray(np.asarray(scene_label(i), dtype=np.uint8)).save(p)
    return folder


def single_process(labels: Path, out: Path, batch_size: int) -> dict[str, Any]:
    """The worker's own code in this process, no Ray: read, synthesize, write PNG."""
    from sdk.services.batch import SynthesisWorker, list_labels, plan

    root, paths = list_labels(labels)
    items = plan(root, paths, out.resolve(), 0)
    worker = SynthesisWorker(str(DEMO), threads=1)
    warm = items[:batch_size]
    worker({"key": [i.key for i in warm], "label": [i.label for i in warm], "out": [i.out for i in warm],
            "seed": [i.seed for i in warm]})
    start = time.perf_counter()
    for j in range(0, len(items), batch_size):
        chunk = items[j:j + batch_size]
        worker({"key": [i.key for i in chunk], "label": [i.label for i in chunk], "out": [i.out for i in chunk],
                "seed": [i.seed for i in chunk]})
    wall = time.perf_counter() - start
    return {"images": len(items), "seconds": round(wall, 2), "throughput": round(len(items) / wall, 2),
            "backend": worker.s.runner().describe(), "threads": 1}


def ray_run(labels: Path, out: Path, workers: int, batch_size: int) -> dict[str, Any]:
    from sdk.services.batch import synthesize_dataset

    shutil.rmtree(out, ignore_errors=True)
    r = synthesize_dataset(DEMO, labels, out, workers=workers, cpus_per_worker=1, batch_size=batch_size,
                           progress=False)
    return {"workers": r.workers, "images": r.written, "synthesis_s": round(r.synthesis_s, 2),
            "throughput": round(r.throughput, 2), "steady_throughput": round(r.steady_throughput, 2),
            "wall_s": round(r.wall_s, 2), "backend": r.backend}


def killed_worker_run(labels: Path, out: Path, n: int, address: str, batch_size: int) -> dict[str, Any]:
    """``python -m sdk batch`` with 2 workers; SIGKILL one worker once n/4 images are recorded."""
    shutil.rmtree(out, ignore_errors=True)
    records = out / "records.jsonl"
    cmd = [sys.executable, "-m", "sdk", "batch", "--bundle", str(DEMO), "--input", str(labels), "--out", str(out),
           "--workers", "2", "--cpus-per-worker", "1", "--batch-size", str(batch_size), "--address", address]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: dict[str, Any] = {}
    deadline = time.monotonic() + 1800
    while proc.poll() is None and time.monotonic() < deadline:
        if not killed and records.is_file():
            lines = records.read_text().splitlines()
            if len(lines) >= n // 4:
                rec = json.loads(lines[-1])
                pid = int(rec["worker"].rsplit(":", 1)[1])
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = {"pid": pid, "after_records": len(lines)}
                    log(f"  killed worker pid {pid} after {len(lines)} records")
                except ProcessLookupError:
                    pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=60)
    pngs = sorted(p for p in out.rglob("*.png"))
    recs = [json.loads(line) for line in records.read_text().splitlines()] if records.is_file() else []
    temps = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    workers = sorted({r["worker"] for r in recs})
    ok = (proc.returncode == 0 and bool(killed) and len(pngs) == n and len(recs) == n
          and len({r["label"] for r in recs}) == n and not temps)
    return {"returncode": proc.returncode, "killed": killed, "images": len(pngs), "records": len(recs),
            "unique_records": len({r["label"] for r in recs}), "temp_files": len(temps),
            "worker_processes_seen": len(workers), "met": ok, "cli_output": stdout.strip().splitlines()[-3:],
            "stderr_tail": stderr.strip().splitlines()[-3:] if proc.returncode else []}


# -- serve ----------------------------------------------------------------------------
def serve_runs(requests: int, duration: float, clients: list[int]) -> dict[str, Any]:
    from ray import serve

    from sdk.benchmarks.app_browser import free_port
    from sdk.benchmarks.serve_load import run_load
    from sdk.services.serve import ServeOptions, start

    body = (ROOT / "samples" / "street_1_label.png").read_bytes()
    port = free_port()
    out = {}
    for max_batch in (1, 8):
        name = f"mb{max_batch}"
        url = start(DEMO, ServeOptions(port=port, max_batch=max_batch, batch_wait_ms=10,
                                       max_queued=max(clients) * 4), name=name, route_prefix=f"/{name}")
        log(f"  serve max batch {max_batch} at {url}")
        out[name] = run_load(url, body, clients, requests=requests, duration_s=duration, seed=0)
        serve.delete(name)
    return out


# -- report ---------------------------------------------------------------------------
def markdown(res: dict[str, Any]) -> str:
    from sdk.benchmarks.serve_load import markdown as load_table

    m = res["machine"]
    lines = [f"# Beyond one process: measured {res['date']}", "",
             f"{m['cpus']} CPUs ({m['processor']}), Python {m['python']}, ray {m['ray']}, gradio {m['gradio']}; "
             f"demo bundle `demo/spade-street` (256x512), onnxruntime CPU.", ""]
    b = res.get("batch")
    if b:
        lines += [f"## sdk batch: {b['labels']} label maps, batch size {b['batch_size']}", "",
                  "| run | workers | images/s | steady images/s | synthesis s | wall s |", "|---|---:|---:|---:|---:|---:|",
                  f"| one process, no Ray (1 thread) | - | {b['single']['throughput']} | - | {b['single']['seconds']} | - |"]
        for key in ("ray_1", "ray_2"):
            r = b[key]
            lines.append(f"| sdk batch | {r['workers']} | {r['throughput']} | {r['steady_throughput']} | "
                         f"{r['synthesis_s']} | {r['wall_s']} |")
        t = b["target"]
        lines += ["", f"Target N=2 throughput >= 0.9 x 2 x single = {t['needed']:.2f} images/s: "
                      f"overall {t['overall']:.2f} ({'met' if t['met_overall'] else 'NOT met'}), "
                      f"steady {t['steady']:.2f} ({'met' if t['met_steady'] else 'NOT met'}).", ""]
        k = b["killed"]
        lines += [f"Killed worker: pid {k['killed'].get('pid')} SIGKILLed after {k['killed'].get('after_records')} "
                  f"records; {k['images']} images, {k['records']} records ({k['unique_records']} unique), "
                  f"{k['temp_files']} temp files, {k['worker_processes_seen']} worker processes wrote records: "
                  f"**{'met' if k['met'] else 'NOT met'}**.", ""]
    s = res.get("serve")
    if s:
        lines += ["## sdk serve: one replica, one CPU", ""]
        for name, rows in s["runs"].items():
            lines.append(load_table(rows, f"max batch {name[2:]}"))
        t = s["target"]
        lines += [f"Batched (max 8) at 32 clients: {t['batched_32']:.1f} images/s = {t['vs_batch1']:.2f}x the "
                  f"batch-1 throughput ({t['batch1']:.1f} images/s, max batch 1, one client): "
                  f"**{'met' if t['met'] else 'NOT met'}** (target 1.5x); {t['vs_unbatched_32']:.2f}x max batch 1 "
                  f"at 32 clients. p99 at 32 clients: {t['p99_32_ms']} ms.", ""]
    a = res.get("app")
    if a:
        lines += ["## sdk app in headless chromium", "",
                  f"{len(a['strokes'])} strokes: pointer-up to new image median {a['median_latency_ms']} ms "
                  f"(max {a['max_latency_ms']}), server synthesis median {a['median_synthesis_ms']} ms; "
                  f"overhead median {a['median_overhead_ms']} ms, max {a['max_overhead_ms']} ms: target "
                  f"(synthesis + 150 ms) met for the median: **{'yes' if a['met_median'] else 'no'}**, "
                  f"for every stroke: **{'yes' if a['met_all'] else 'no'}**.", ""]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="toy sizes: prove the steps run (~2 min)")
    p.add_argument("--labels", type=int, default=None, help="label maps for batch (2000; quick 40)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--requests", type=int, default=None, help="most requests per serve level (300; quick 16)")
    p.add_argument("--duration", type=float, default=60.0, help="most seconds per serve level")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--strokes", type=int, default=None, help="app strokes (10; quick 3)")
    p.add_argument("--only", nargs="+", choices=("batch", "serve", "app"), default=["batch", "serve", "app"])
    p.add_argument("--screenshot", default=None, help="also save the app's page here (e.g. docs/app.png)")
    p.add_argument("--work", default="/tmp/sdk-scale-check", help="label maps and outputs (kept for re-runs)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results/scale-DATE[-quick])")
    return p


def batch_check(n: int, work: Path, batch_size: int) -> dict[str, Any]:
    """Target 1: one process, then Ray with 1 and 2 workers, then a worker killed mid-run."""
    import ray

    labels = make_labels(work / f"labels-{n}", n)
    log(f"batch: {n} label maps in {labels}")
    single = single_process(labels, work / "out-single", batch_size)
    log(f"  one process: {single['throughput']} images/s")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    start_s = time.perf_counter() - start
    address = ray.get_runtime_context().gcs_address
    r1 = ray_run(labels, work / "out-ray1", 1, batch_size)
    log(f"  1 worker: {r1['throughput']} images/s (steady {r1['steady_throughput']})")
    r2 = ray_run(labels, work / "out-ray2", 2, batch_size)
    log(f"  2 workers: {r2['throughput']} images/s (steady {r2['steady_throughput']})")
    killed = killed_worker_run(labels, work / "out-killed", n, address, batch_size)
    log(f"  killed worker: {killed['images']} images, {killed['records']} records, met {killed['met']}")
    ray.shutdown()
    need = 0.9 * 2 * single["throughput"]
    return {"labels": n, "batch_size": batch_size, "ray_start_s": round(start_s, 2),
            "single": single, "ray_1": r1, "ray_2": r2, "killed": killed,
            "target": {"needed": need, "overall": r2["throughput"], "steady": r2["steady_throughput"],
                       "met_overall": r2["throughput"] >= need,
                       "met_steady": r2["steady_throughput"] >= need}}


def serve_check(requests: int, duration: float, clients: list[int]) -> dict[str, Any]:
    """Target 2: ``sdk serve`` without and with dynamic batching at each client count."""
    import ray

    log(f"serve: {requests} requests or {duration:g} s per level, clients {clients}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    runs = serve_runs(requests, duration, clients)
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    by = {name: {r["clients"]: r for r in rows} for name, rows in runs.items()}
    hi = max(clients)
    batch1 = by["mb1"][min(clients)]["throughput"]
    batched = by["mb8"][hi]["throughput"]
    log(f"  batched at {hi} clients: {batched} images/s vs batch-1 {batch1}")
    return {"runs": runs, "target": {
        "batch1": batch1, "batched_32": batched, "vs_batch1": batched / batch1 if batch1 else 0.0,
        "vs_unbatched_32": batched / by["mb1"][hi]["throughput"] if by["mb1"][hi]["throughput"] else 0.0,
        "p99_32_ms": by["mb8"][hi]["p99_ms"], "met": batch1 > 0 and batched >= 1.5 * batch1}}


def app_check(strokes: int, screenshot: str | None) -> dict[str, Any]:
    """Target 3: strokes painted on ``sdk app`` in headless chromium."""
    from sdk.benchmarks.app_browser import measure

    log(f"app: {strokes} strokes in headless chromium")
    app = measure(DEMO, ROOT / "samples" / "street_1_label.png", strokes, screenshot)
    log(f"  median latency {app['median_latency_ms']} ms, synthesis {app['median_synthesis_ms']} ms")
    return app


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    n = args.labels or (40 if args.quick else 2000)
    requests = args.requests or (16 if args.quick else 300)
    strokes = args.strokes or (3 if args.quick else 10)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"scale-{date}{'-quick' if args.quick else ''}")

    import gradio
    import ray

    res: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
                           "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                                       "python": platform.python_version(), "ray": ray.__version__,
                                       "gradio": gradio.__version__}}
    t0 = time.perf_counter()
    if "batch" in args.only:
        res["batch"] = batch_check(n, Path(args.work), args.batch_size)
    if "serve" in args.only:
        res["serve"] = serve_check(requests, args.duration, args.clients)
    if "app" in args.only:
        res["app"] = app_check(strokes, args.screenshot)
    res["total_s"] = round(time.perf_counter() - t0, 1)

    from sdk.atomic import write_bytes_atomic

    write_bytes_atomic(out / "results.json", (json.dumps(res, indent=2) + "\n").encode())
    write_bytes_atomic(out / "results.md", markdown(res).encode())
    log(f"wrote {out / 'results.json'} and results.md in {res['total_s']} s")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
