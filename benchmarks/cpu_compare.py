"""Two bundle folders of the same preset on onnxruntime CPU, interleaved call by call.

    python benchmarks/cpu_compare.py --pair spade-ade20k OLD/spade-ade20k NEW/spade-ade20k [--pair ...]
        [--runs 20] [--warmup 3] [--threads 2] [--out benchmarks/results/cpu-before-after]

Each call is what the SDK does for one image end to end: build the graph's feeds from a
block label map (class ids; for a schema-1 bundle, its float one-hot, as the SDK of that
schema made on the host), run the session, and turn the image into 8 bits (in the graph
where it has an ``image_u8`` output, in numpy otherwise). Calls of the two bundles
alternate, so a busy machine slows both alike; medians over ``--runs`` calls after
``--warmup``. Reads manifests of schema 1 and 2 directly (no ``sdk.Bundle``), so a bundle
exported by an older sdk can be measured next to a new one.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def block_labels(h: int, w: int, classes: int, seed: int = 0, block: int = 16) -> np.ndarray:
    """A label map of uniform blocks (regions, as real maps have), ids in 0..classes-1."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w]


def one_call(folder: Path, threads: int) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A zero-argument callable doing one end-to-end SDK call on ``folder``, and facts about it."""
    import onnxruntime as ort

    from sdk.labels import instance_edges, to_image

    manifest = json.loads((folder / "manifest.json").read_text())
    graph = manifest["graphs"]["model"]
    h, w = manifest["resolution"]
    classes = (manifest.get("label") or {}).get("num_classes")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(folder / graph["file"]), opts, providers=["CPUExecutionProvider"])
    ids = block_labels(h, w, classes)[None] if classes else None
    rng = np.random.default_rng(0)
    fixed = {s["name"]: rng.standard_normal([1 if d is None else d for d in s["shape"]]).astype(np.float32)
             for s in graph["inputs"] if s["kind"] not in ("label", "instance_edge")}
    u8 = [o["name"] for o in graph["outputs"] if o["kind"] == "image_u8"]
    schema = manifest["schema_version"]

    def feeds() -> dict[str, np.ndarray]:
        out = dict(fixed)
        for s in graph["inputs"]:
            if s["kind"] == "label":
                if schema == 1:  # what the schema-1 SDK did on the host: a float one-hot
                    oh = np.zeros((1, classes, h, w), np.float32)
                    np.put_along_axis(oh, ids[:, None], 1.0, axis=1)
                    out[s["name"]] = oh
                else:
                    out[s["name"]] = ids.astype(np.int32)
            elif s["kind"] == "instance_edge":
                edges = instance_edges(ids)
                out[s["name"]] = edges[:, None].astype(np.float32) if schema == 1 else edges
        return out

    def call() -> Any:
        if u8:
            return session.run(u8[:1], feeds())[0][0]
        return np.asarray(to_image(session.run(["image"], feeds())[0][0]))

    facts = {"schema": schema, "classes": classes, "size": f"{h}x{w}",
             "label_lookups": graph.get("label_lookups", 0), "onnx_mb": (folder / graph["file"]).stat().st_size / 1e6}
    return call, facts


def compare(name: str, a: Path, b: Path, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    call_a, facts_a = one_call(a, threads)
    call_b, facts_b = one_call(b, threads)
    for _ in range(warmup):
        call_a()
        call_b()
    ta, tb = [], []
    for _ in range(runs):
        for call, times in ((call_a, ta), (call_b, tb)):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
    ma, mb = statistics.median(ta), statistics.median(tb)
    row = {"model": name, "a": str(a), "b": str(b), "a_facts": facts_a, "b_facts": facts_b, "runs": runs,
           "warmup": warmup, "threads": threads, "a_median_ms": ma, "b_median_ms": mb,
           "a_p90_ms": float(np.percentile(ta, 90)), "b_p90_ms": float(np.percentile(tb, 90)), "speedup": ma / mb}
    print(f"[cpu_compare] {name}: {ma:.0f} ms -> {mb:.0f} ms ({ma / mb:.2f}x)", flush=True)
    return row


def to_markdown(rows: list[dict[str, Any]], label_a: str, label_b: str) -> str:
    lines = [f"| model | size | classes | {label_a} ms | {label_b} ms | speed-up | lookups (a -> b) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        fa, fb = r["a_facts"], r["b_facts"]
        lines.append(f"| {r['model']} | {fb['size']} | {fb['classes'] or '-'} | {r['a_median_ms']:.0f} | "
                     f"{r['b_median_ms']:.0f} | {r['speedup']:.2f}x | {fa['label_lookups']} -> {fb['label_lookups']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", nargs=3, action="append", metavar=("NAME", "BUNDLE_A", "BUNDLE_B"), required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--labels", nargs=2, default=("before", "after"), metavar=("A", "B"))
    p.add_argument("--out", help="folder for compare.json and compare.md")
    args = p.parse_args(argv)
    rows = [compare(n, Path(a), Path(b), args.runs, args.warmup, args.threads) for n, a, b in args.pair]
    md = to_markdown(rows, *args.labels)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "compare.md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
