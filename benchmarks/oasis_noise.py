"""How OASIS graphs take their 3D noise, timed side by side: one vector (the graph before
per-class noise), per-class codes (what bundles export now) and a spatial map.

    python benchmarks/oasis_noise.py [--preset oasis-ade20k] [--runs 20] [--warmup 3] [--threads 2]
        [--backends onnxruntime torch] [--ci-size] [--out benchmarks/results/oasis-noise]

The three graphs share one network with the same (seeded, calibrated) weights:

* ``vector``: ``z`` (N, 64), broadcast over the pixels inside the graph (bundles before);
* ``codes``: ``codes`` (N, C, 64), each pixel's row gathered by its class id at every
  resolution inside the graph (bundles now); fed one vector in every row, as a seed draws;
* ``map``: ``z_map`` (N, 64, H, W) made on the host from the same codes (numpy gather),
  resized by strided slicing inside the graph.

Each call is one image end to end, as the SDK makes it: feeds from a block label map
(int32 ids) and the noise, run, the 8-bit image. onnxruntime runs the exported graphs
(label convolutions as lookups where the preset has >= 64 classes, as bundles do); torch
runs the module as the torch runner does on CPU (``train.deploy.runner.deploy_module`` at
FP32: one-hot convolutions, 8-bit output in the module; eager). The variants run in ABBA order (``vector codes map map codes vector``, repeated),
so a busy machine slows them alike; medians over ``--runs`` calls per variant after
``--warmup`` (and the median of the paired ratios, call i against call i of ``vector``).
``--profile N`` adds onnxruntime's own per-node times over N calls: the time of the nodes
that handle the noise before a convolution reads it, and its share of the graph's, a figure
a busy machine moves little; for torch the noise work alone (``LabelMap.before_map`` at
every resolution, the host gather of the map) is timed the same way. Writes ``results.json`` and ``results.md`` under ``--out``;
the ONNX files go to ``--out/bundles/`` (git-ignored) and are reused by the next run.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = ("vector", "codes", "map")


def build_network(preset: str, ci_size: bool) -> Any:
    """The preset's network, export-ready, with the weights a random-weight bundle gets
    (seed 0, normalisation statistics calibrated on four seeded batches)."""
    import torch

    from sdk.train.deploy.fold import calibrate_norm_stats, export_ready
    from sdk.train.models import get_preset

    p = get_preset(preset)
    torch.manual_seed(0)
    model = p.build(**(p.test_overrides if ci_size else {}))
    spec = model.graphs()["model"]
    calibrate_norm_stats(spec.module, lambda step: spec.examples(4, seed=10_000 + step))
    return export_ready(model.eval())


def variant_spec(model: Any, variant: str, lookups: bool) -> Any:
    """The deploy graph (8-bit output added) of ``variant`` on a copy of ``model``."""
    from sdk.export.label_lookup import use_label_lookup
    from sdk.train.families.oasis.network import LabelNoiseGraph
    from sdk.train.models.spec import GraphSpec, Kind, TensorSpec

    model = copy.deepcopy(model)
    if lookups:
        use_label_lookup(model)
    model.noise_input = "latent" if variant == "vector" else "codes"
    spec = model.graphs()["model"]
    if variant == "map":
        cfg = model.config
        noise = TensorSpec("z_map", Kind.NOISE_MAP, (None, cfg.z_dim, cfg.height, cfg.width))
        spec = GraphSpec(LabelNoiseGraph(model.netG, model.clamp), (spec.inputs[0], noise), spec.outputs)
    return spec.with_uint8_outputs()


def noise_feed(variant: str, z: np.ndarray, ids: np.ndarray, classes: int) -> dict[str, np.ndarray]:
    """The noise input of one call: z (1, D) as each variant takes it (the map is made here,
    on the host, as the SDK would have to)."""
    if variant == "vector":
        return {"z": z}
    codes = np.repeat(z[:, None], classes, axis=1)
    if variant == "codes":
        return {"codes": codes}
    gathered = np.take_along_axis(codes, ids.reshape(1, -1, 1).astype(np.int64), axis=1)  # (1, H*W, D)
    return {"z_map": np.ascontiguousarray(gathered.transpose(0, 2, 1).reshape(1, -1, *ids.shape[1:]))}


def onnx_calls(model: Any, folder: Path, ids: np.ndarray, z: np.ndarray, threads: int, lookups: bool
               ) -> dict[str, Callable[[], np.ndarray]]:
    import onnxruntime as ort

    from sdk.export.onnx_export import export_onnx

    calls = {}
    classes = model.config.num_classes
    for variant in VARIANTS:
        path = folder / f"{variant}.onnx"
        if not path.is_file():
            print(f"exporting the {variant} graph to {path}", flush=True)
            export_onnx(variant_spec(model, variant, lookups), path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as sdk.backends.onnxruntime
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def call(session: Any = session, variant: str = variant) -> np.ndarray:
            feeds = {"label": ids.astype(np.int32), **noise_feed(variant, z, ids, classes)}
            return session.run(["image_u8"], feeds)[0]

        calls[variant] = call
    return calls


def torch_calls(model: Any, ids: np.ndarray, z: np.ndarray, threads: int) -> dict[str, Callable[[], np.ndarray]]:
    import torch

    torch.set_num_threads(threads)
    calls = {}
    classes = model.config.num_classes
    for variant in VARIANTS:
        module = variant_spec(model, variant, lookups=False).module.eval()

        def call(module: Any = module, variant: str = variant) -> np.ndarray:
            feeds = {"label": ids.astype(np.int32), **noise_feed(variant, z, ids, classes)}
            with torch.inference_mode():
                out = module(*(torch.from_numpy(x) for x in feeds.values()))
            return out[-1].numpy()

        calls[variant] = call
    return calls


def noise_nodes(path: Path, noise: str) -> set[str]:
    """Names of the ONNX nodes that handle the noise input before a convolution reads it
    (vector: Reshape, Expand; codes: the gather and its transpose; map: the slices)."""
    import onnx

    graph = onnx.load(str(path)).graph
    reached, names = {noise}, set()
    for node in graph.node:  # topologically sorted
        if node.op_type not in ("Conv", "Concat") and set(node.input) & reached:
            reached |= set(node.output)
            names.add(node.name)
    return names


def profile_share(path: Path, feeds: dict[str, np.ndarray], noise: str, threads: int, runs: int) -> dict[str, float]:
    """onnxruntime's own per-node times over ``runs`` calls: the noise nodes' ms per call
    and their share of all nodes' time (a share is little moved by a busy machine)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix(""))
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    session.run(["image_u8"], feeds)  # warm-up, profiled too: dropped below by counting runs
    for _ in range(runs):
        session.run(["image_u8"], feeds)
    trace = Path(session.end_profiling())
    events = [e for e in json.loads(trace.read_text()) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    trace.unlink()
    mine = noise_nodes(path, noise)
    total = sum(e["dur"] for e in events) / (runs + 1) / 1e3
    spent = sum(e["dur"] for e in events if e["name"][:-len("_kernel_time")] in mine) / (runs + 1) / 1e3
    return {"noise_nodes_ms": round(spent, 2), "all_nodes_ms": round(total, 1), "share": round(spent / total, 5)}


def torch_noise_ops(model: Any, ids: np.ndarray, z: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Per variant, the noise work alone as the torch network does it: the noise channels
    made at every resolution a layer reads them (``LabelMap.before_map``), the host's
    gather for the map included. Timed like the calls: what it costs against a whole call."""
    import torch

    from sdk.train.models.layers.label_map import LabelMap

    cfg = model.config
    sizes = [(cfg.height >> k, cfg.width >> k) for k in range(cfg.num_res_blocks)]
    ids_t = torch.from_numpy(ids.astype(np.int32))

    def work(variant: str) -> Callable[[], Any]:
        def run() -> Any:
            noise = torch.from_numpy(noise_feed(variant, z, ids, cfg.num_classes)[
                {"vector": "z", "codes": "codes", "map": "z_map"}[variant]])
            if variant == "vector":
                seg = LabelMap(ids_t, cfg.num_classes, before=noise.view(1, -1, 1, 1))
            elif variant == "codes":
                seg = LabelMap(ids_t, cfg.num_classes, before_by_class=noise)
            else:
                seg = LabelMap(ids_t, cfg.num_classes, before=noise)
            with torch.inference_mode():
                return [seg.at(size).before_map() for size in sizes]
        return run

    return {v: work(v) for v in VARIANTS}


def abba(calls: dict[str, Callable[[], np.ndarray]], runs: int, warmup: int) -> dict[str, Any]:
    """Median ms per variant over ``runs`` calls each, in ABBA order; images compared. Also the
    median of the paired ratios (call i of a variant / call i of the first variant: neighbours
    in time, so a load that drifts cancels)."""
    names = list(calls)
    images = {n: calls[n]() for n in names}  # first call, kept for the comparison
    for _ in range(warmup):
        for n in names:
            calls[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    order = names + names[::-1]
    while min(len(t) for t in times.values()) < runs:
        for n in order:
            if len(times[n]) < runs:
                start = time.perf_counter()
                calls[n]()
                times[n].append((time.perf_counter() - start) * 1e3)
    first = times[names[0]]
    if not isinstance(images[names[0]], np.ndarray):  # timings only
        return {n: {"median_ms": round(statistics.median(t), 2)} for n, t in times.items()}
    ref = images[names[0]].astype(np.int16)
    return {n: {"median_ms": round(statistics.median(t), 1), "min_ms": round(min(t), 1),
                "vs_" + names[0]: round(statistics.median(t) / statistics.median(first), 4),
                "paired_vs_" + names[0]: round(statistics.median([a / b for a, b in zip(t, first)]), 4),
                "max_levels_vs_" + names[0]: int(np.abs(images[n].astype(np.int16) - ref).max()),
                "ms": [round(x, 1) for x in t]} for n, t in times.items()}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="oasis-ade20k")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"], choices=["onnxruntime", "torch"])
    ap.add_argument("--ci-size", action="store_true", help="the preset's CI overrides (a quick check)")
    ap.add_argument("--profile", type=int, default=5, metavar="N",
                    help="also profile N onnxruntime calls per variant: the noise nodes' share of the time (0: off)")
    ap.add_argument("--out", default="benchmarks/results/oasis-noise")
    return ap


def measure_backend(backend: str, model: Any, folder: Path, ids: np.ndarray, z: np.ndarray, lookups: bool,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Every variant on ``backend`` in ABBA order, printed; torch: the noise work timed alone
    too, onnxruntime: the noise nodes' share from its profiler (``--profile``)."""
    cfg = model.config
    print(f"{backend}: {args.runs} calls per variant after {args.warmup} warm-up, ABBA", flush=True)
    calls = (onnx_calls(model, folder, ids, z, args.threads, lookups) if backend == "onnxruntime"
             else torch_calls(model, ids, z, args.threads))
    rows = abba(calls, args.runs, args.warmup)
    for n, r in rows.items():
        print(f"  {n:<7} median {r['median_ms']:8.1f} ms  ({r['vs_vector']:.3f}x vector; paired "
              f"{r['paired_vs_vector']:.3f}x; image within {r['max_levels_vs_vector']} levels of vector's)",
              flush=True)
    if backend == "torch":
        ops = abba(torch_noise_ops(model, ids, z), args.runs, args.warmup)
        for n, r in ops.items():
            call = rows[n]["median_ms"]
            rows[n]["noise_ops_ms"] = r["median_ms"]
            print(f"  {n:<7} torch noise work alone: {r['median_ms']} ms ({r['median_ms'] / call:.2%} of a call)",
                  flush=True)
    if backend == "onnxruntime" and args.profile:
        for n in VARIANTS:
            feeds = {"label": ids.astype(np.int32), **noise_feed(n, z, ids, cfg.num_classes)}
            share = profile_share(folder / f"{n}.onnx", feeds, next(k for k in feeds if k != "label"),
                                  args.threads, args.profile)
            rows[n]["profile"] = share
            print(f"  {n:<7} onnxruntime profile: noise nodes {share['noise_nodes_ms']} ms of "
                  f"{share['all_nodes_ms']} ms per call ({share['share']:.2%})", flush=True)
    return rows


def markdown(results: dict[str, Any]) -> str:
    """``results.md``: one row per backend and noise input."""
    height, width = results["resolution"]
    lines = [f"# OASIS noise inputs: {results['preset']} ({results['size']} size {height}x{width}), batch 1, "
             f"{results['threads']} threads, median of {results['runs']} after {results['warmup']} warm-up, "
             f"{results['order']}, {results['date']}", "",
             "| backend | noise input | median ms | vs vector | paired vs vector | max levels vs vector | "
             "noise work per call |", "|---|---|---:|---:|---:|---:|---|"]
    for backend, rows in results["backends"].items():
        for n, r in rows.items():
            prof = r.get("profile")
            prof_text = (f"{prof['noise_nodes_ms']} of {prof['all_nodes_ms']} ms ({prof['share']:.2%})" if prof
                         else f"{r['noise_ops_ms']} ms alone (torch)" if "noise_ops_ms" in r else "-")
            lines.append(f"| {backend} | {n} | {r['median_ms']} | {r['vs_vector']:.3f}x | {r['paired_vs_vector']:.3f}x "
                         f"| {r['max_levels_vs_vector']} | {prof_text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from benchmarks.cpu_compare import block_labels
    from sdk.export.label_lookup import MIN_CLASSES

    out = Path(args.out)
    folder = out / "bundles" / (args.preset + ("-ci" if args.ci_size else ""))
    folder.mkdir(parents=True, exist_ok=True)
    model = build_network(args.preset, args.ci_size)
    cfg = model.config
    ids = block_labels(cfg.height, cfg.width, cfg.num_classes)[None]
    z = np.random.default_rng(0).standard_normal((1, cfg.z_dim)).astype(np.float32)
    lookups = cfg.num_classes >= MIN_CLASSES
    results: dict[str, Any] = {
        "preset": args.preset, "size": "ci" if args.ci_size else "full", "resolution": [cfg.height, cfg.width],
        "threads": args.threads, "runs": args.runs, "warmup": args.warmup, "batch": 1,
        "date": dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
        "label_lookups_in_onnx": lookups, "order": "ABBA: " + " ".join(VARIANTS + VARIANTS[::-1]), "backends": {}}
    for backend in args.backends:
        results["backends"][backend] = measure_backend(backend, model, folder, ids, z, lookups, args)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(f"wrote {out / 'results.json'} and results.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
