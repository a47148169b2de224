"""Bounded load test of ``python -m sdk serve``: latency and throughput per client count.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --clients 1 8 32 \\
        --requests 400 --duration 60 --label samples/street_1_label.png

Each level runs ``--clients`` concurrent clients, each sending its next request when the
last one is answered, until ``--requests`` requests are sent or ``--duration`` seconds
pass, whichever comes first; then it reports p50 / p99 latency of the answered requests,
throughput (answered 200s per second) and the status codes. Loopback only: the script
refuses any URL whose host is not 127.0.0.0/8, localhost or ::1.

``--bundle DIR`` starts the server itself (on Ray, this machine) with ``--max-batch`` and
``--batch-wait-ms``, runs the levels, and shuts it down.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def check_loopback(url: str) -> None:
    """Raise ValueError unless ``url`` points at this machine's loopback interface."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"load tests target this machine only: {url!r} is not a loopback address "
                         f"(use 127.0.0.1, localhost or [::1])")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    k = max(0, min(len(xs) - 1, math.ceil(q / 100 * len(xs)) - 1))
    return xs[k]


async def _level(url: str, body: bytes, clients: int, requests: int, duration_s: float,
                 seed: int | None, timeout_s: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    batches: list[int] = []
    sent = 0
    deadline = time.perf_counter() + duration_s
    target = f"{url.rstrip('/')}/synthesize" + ("" if seed is None else f"?seed={seed}")
    conn = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            t = time.perf_counter()
            try:
                async with session.post(target, data=body, headers={"Content-Type": "image/png"}) as r:
                    await r.read()
                    code = str(r.status)
                    if r.status == 200:
                        latencies.append(time.perf_counter() - t)
                        batches.append(int(r.headers.get("X-Batch-Size", "1")))
            except asyncio.TimeoutError:
                code = "timeout"
            except aiohttp.ClientError as exc:
                code = type(exc).__name__
            statuses[code] = statuses.get(code, 0) + 1

    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    wall = time.perf_counter() - start
    ok = len(latencies)
    return {"clients": clients, "sent": sent, "ok": ok, "statuses": statuses, "wall_s": round(wall, 3),
            "throughput": round(ok / wall, 2) if wall > 0 else 0.0,
            "p50_ms": round(percentile(latencies, 50) * 1e3, 1) if ok else None,
            "p99_ms": round(percentile(latencies, 99) * 1e3, 1) if ok else None,
            "mean_batch": round(statistics.fmean(batches), 2) if batches else None}


def run_load(url: str, label_png: bytes, clients: Sequence[int] = (1, 8, 32), *, requests: int = 200,
             duration_s: float = 30.0, seed: int | None = 0, timeout_s: float = 60.0,
             warmup: int = 4) -> list[dict[str, Any]]:
    """One result per client count; ``requests`` and ``duration_s`` bound each level."""
    check_loopback(url)
    if requests < 1 or duration_s <= 0:
        raise ValueError("--requests must be >= 1 and --duration > 0")
    out = []
    if warmup:
        asyncio.run(_level(url, label_png, 1, warmup, duration_s, seed, timeout_s))
    for c in clients:
        out.append(asyncio.run(_level(url, label_png, c, requests, duration_s, seed, timeout_s)))
    return out


def markdown(rows: Sequence[dict[str, Any]], title: str) -> str:
    lines = [f"**{title}**", "", "| clients | requests | 200 | other | p50 ms | p99 ms | images/s | mean batch |",
             "|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        other = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()) if k != "200") or "-"
        lines.append(f"| {r['clients']} | {r['sent']} | {r['ok']} | {other} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['throughput']} | {r['mean_batch']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="running server (loopback only)")
    p.add_argument("--bundle", help="start a server over this bundle instead of --url")
    p.add_argument("--port", type=int, default=8011, help="port of the server --bundle starts")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--label", default=str(ROOT / "samples" / "street_1_label.png"))
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=200, help="most requests per level")
    p.add_argument("--duration", type=float, default=30.0, help="most seconds per level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    if bool(args.url) == bool(args.bundle):
        p.error("give exactly one of --url and --bundle")
    body = Path(args.label).read_bytes()
    url = args.url
    if args.bundle:
        from sdk.services.serve import ServeOptions, start

        url = start(args.bundle, ServeOptions(port=args.port, max_batch=args.max_batch,
                                              batch_wait_ms=args.batch_wait_ms, max_queued=max(args.clients) * 4))
    try:
        rows = run_load(url, body, args.clients, requests=args.requests, duration_s=args.duration, seed=args.seed)
    finally:
        if args.bundle:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    print(markdown(rows, f"{url}: max batch {args.max_batch}" if args.bundle else url))
    if args.json:
        from sdk.atomic import write_bytes_atomic

        write_bytes_atomic(args.json, (json.dumps(rows, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
