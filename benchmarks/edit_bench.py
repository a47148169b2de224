"""Edit benchmark: a full pass vs an incremental update after a local edit, same torch runner.

    python -m benchmarks.edit_bench [--presets spade-ade20k,oasis-ade20k,groupdnet-deepfashion]
        [--size full|ci] [--runs 10] [--warmup 2] [--threads 2] [--precision fp32]
        [--maps blocks,sample] [--out benchmarks/results/edit-DATE] [--bundles DIR] [--tune]

Per preset and label map (``blocks``: an 8x8 grid of uniform blocks, each a random class;
``sample``: the repository's sample label map of the preset's dataset, read through the
bundle's intake) and per edit (:mod:`benchmarks.edits`: a brush stroke and a region relabel
of 0.5, 2, 5 and 20% of the pixels): after ``--warmup`` rounds, ``--runs`` rounds of
(full pass of the edited map, incremental update base -> edited, untimed update back to the
base), so both timings see the same machine load; the medians and their ratio are
reported. Every incremental image is compared with the full pass of the same feeds
(max difference in 8-bit levels, relative L2 of the float image) -- the exactness record.

Bundles (random weights with calibrated batch-norm statistics, torch-only: no ONNX graphs)
are exported to ``--bundles`` (default OUT/bundles, git-ignored). Writes ``results.json``,
``results.md`` and ``speedup.png`` to ``--out``. ``--tune`` instead times each label branch of
the first preset, whole and as tiles of each size (:func:`tune`), and writes ``tuning.json``
(the figures behind ``sdk.train.deploy.incremental.TUNING``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.edits import FRACTIONS, KINDS, block_map, changed_fraction, make_edit  # noqa: E402

PRESETS = ("spade-ade20k", "oasis-ade20k", "groupdnet-deepfashion")
SAMPLES = {"ade20k": "samples/ade_1_label.png", "cityscapes": "samples/street_1_label.png",
           "deepfashion": "samples/fashion_1_label.png", "coco": "samples/coco_1_label.png"}
"""The sample label map of each dataset (by the preset name's last part)."""
TUNE_BLOCKS = (8, 16, 32)
TUNE_FRACTIONS = (0.05, 0.15, 0.3, 0.5, 0.75)


def bundle_path(name: str, size: str, bundles: Path) -> Path:
    """The preset's torch-only bundle at ``size`` (``full`` or ``ci``), exported when missing."""
    from sdk.export.bundle import build_bundle
    from sdk.train.models import get_preset

    path = bundles / f"{name}-{size}"
    if not (path / "manifest.json").is_file():
        overrides = {} if size == "full" else get_preset(name).test_overrides
        print(f"[edit_bench] exporting {name} ({size} size) to {path}", flush=True)
        build_bundle(name, path, overrides=overrides, seed=0, onnx=False)
    return path


def label_maps(bundle: Any, which: Sequence[str]) -> dict[str, np.ndarray]:
    """The benchmark's base maps of a bundle, as model ids."""
    from sdk.intake import LabelIntake

    classes = int(bundle.num_classes)
    out = {}
    for kind in which:
        if kind == "blocks":
            out[kind] = block_map(bundle.resolution, classes, seed=0)
        elif kind == "sample":
            sample = SAMPLES.get(bundle.name.rsplit("-", 1)[-1])
            if sample:
                out[kind] = LabelIntake(bundle).read(ROOT / sample, regions_as_edges=True).ids
        else:
            raise SystemExit(f"unknown map {kind!r}: use blocks, sample")
    return out


def feeds_for(runner: Any, ids: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Feeds of one map: its ids, its region edges (as the intake makes them), seeded latents."""
    from sdk.labels import instance_edges

    rng = np.random.default_rng(seed)
    feeds = {}
    for s in runner.spec.inputs:
        if s.kind == "label":
            feeds[s.name] = ids[None].astype(np.int32)
        elif s.kind == "instance_edge":
            feeds[s.name] = instance_edges(ids[None])
        else:
            feeds[s.name] = rng.standard_normal((1, *s.shape[1:])).astype(np.float32)
    return feeds


def timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, its wall time and the process's CPU time over it, in ms. Both: on a loaded
    machine the wall time holds the waits for a core, the CPU time the work done."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def compare(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[int, float]:
    """(max 8-bit level difference, relative L2 of the float image)."""
    levels = int(np.abs(got["image_u8"].astype(int) - ref["image_u8"].astype(int)).max())
    a, b = got["image"].astype(np.float64), ref["image"].astype(np.float64)
    return levels, float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def bench_edit(runner: Any, sess: Any, base: dict, edited: dict, runs: int, warmup: int) -> dict[str, Any]:
    """Interleaved rounds of (full pass, incremental update, update back); medians and exactness."""
    names = ["image", "image_u8"]
    times: dict[str, list[float]] = {"full_ms": [], "incremental_ms": [], "full_cpu_ms": [], "incremental_cpu_ms": []}
    worst, rel, recomputed, kinds = 0, 0.0, [], set()
    for i in range(warmup + runs):
        ref, full_wall, full_cpu = timed(lambda: runner.run(edited, outputs=names))
        (got, stats), incr_wall, incr_cpu = timed(lambda: sess.update(edited))
        levels, err = compare(got, ref)
        worst, rel = max(worst, levels), max(rel, err)
        sess.update(base)
        if i >= warmup:
            for key, value in (("full_ms", full_wall), ("incremental_ms", incr_wall), ("full_cpu_ms", full_cpu),
                               ("incremental_cpu_ms", incr_cpu)):
                times[key].append(value)
            recomputed.append(stats["recomputed"])
            kinds.add("incremental" if stats["incremental"] else f"full ({stats['reason']})")
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**med, "speedup": med["full_ms"] / med["incremental_ms"],
            "speedup_cpu": med["full_cpu_ms"] / med["incremental_cpu_ms"],
            "recomputed": statistics.median(recomputed), "max_levels": worst, "rel_l2": rel, "updates": sorted(kinds),
            **{f"{k}_all": [round(x, 1) for x in v] for k, v in times.items()}}


def bench_preset(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from sdk import Bundle
    from sdk.train.deploy.runner import TorchRunner

    bundle = Bundle(bundle_path(name, args.size, args.bundles))
    runner = TorchRunner(bundle, device=args.device, precision=args.precision, compile=False,
                         cuda_graphs=False, threads=args.threads)
    classes = int(bundle.num_classes)
    rows = []
    for map_name, ids in label_maps(bundle, args.maps).items():
        base = feeds_for(runner, ids)
        sess = runner.edit_session(base, outputs=["image", "image_u8"])
        if sess.reason:
            print(f"[edit_bench] {name}: {sess.reason}", flush=True)
        for kind in KINDS:
            for fraction in args.fractions:
                new = make_edit(kind, ids, fraction, classes, seed=1)
                row = {"preset": name, "size": "x".join(map(str, bundle.resolution)), "map": map_name, "edit": kind,
                       "target": fraction, "changed": changed_fraction(ids, new),
                       **bench_edit(runner, sess, base, feeds_for(runner, new), args.runs, args.warmup)}
                rows.append(row)
                print(f"[edit_bench] {name} {map_name} {kind} {fraction:.1%} (changed {row['changed']:.2%}): "
                      f"full {row['full_ms']:.0f} ms, incremental {row['incremental_ms']:.0f} ms, "
                      f"{row['speedup']:.2f}x, max {row['max_levels']} level(s)", flush=True)
        sess.close()
    runner.close()
    return rows


def label_branches(runner: Any, base: dict[str, np.ndarray]) -> tuple[Any, list[tuple[Any, Any]]]:
    """An edit session on ``base`` and every label branch (with its label input) its full pass ran."""
    from sdk.train.deploy import incremental

    seen: list[tuple[Any, Any]] = []  # (branch, its label input) of one full pass
    full = incremental._Branch.full
    incremental._Branch.full = lambda self, label: (seen.append((self, label)), full(self, label))[1]  # type: ignore
    try:
        sess = runner.edit_session(base, outputs=["image_u8"])
    finally:
        incremental._Branch.full = full  # type: ignore
    return sess, seen


def tiles_ms(branch: Any, label: Any, block: int, fraction: float, rng: np.random.Generator,
             cpu_ms: Callable[[Callable[[], Any]], float]) -> float:
    """CPU time of redoing ``fraction`` of one layer's tiles of side ``block`` (scattered at random)."""
    import torch

    from sdk.train.deploy import incremental

    size = tuple(branch.scale.shape[-2:])
    side = incremental.block_for(size, block)
    grid = (size[0] // side, size[1] // side)
    count = max(1, round(fraction * grid[0] * grid[1]))
    pick = rng.choice(grid[0] * grid[1], count, replace=False)
    idx = torch.tensor([[0, p // grid[1], p % grid[1]] for p in sorted(pick)])
    tiles = incremental.Tiles(side, branch.halo, idx)
    dtype = branch.module.mlp_gamma.weight.dtype

    def redo() -> None:
        windows, inside = incremental._Update(None, block, 1.0).windows(label, size, tiles, dtype)
        scale, shift = branch.tiles(windows, inside)
        tiles.scatter(branch.scale, scale)
        tiles.scatter(branch.shift, shift)
    return cpu_ms(redo)


def tune(args: argparse.Namespace) -> dict[str, Any]:
    """Tile size and ``full_above`` from the label branches of the first preset, layer by layer.

    Every modulation layer's label branch is timed on its own (the minimum CPU time of
    ``args.runs`` tries, robust on a shared machine): whole, and as T tiles of side B (T a
    fraction of the layer's tiles, scattered at random). Summed over the layers, the ratio
    tiles / whole per (B, fraction) says which B redoes a small edit cheapest and at which
    fraction of dirty tiles a layer is better recomputed whole."""
    import torch

    from sdk import Bundle
    from sdk.train.deploy.runner import TorchRunner

    name = args.presets[0]
    bundle = Bundle(bundle_path(name, args.size, args.bundles))
    runner = TorchRunner(bundle, device=args.device, precision=args.precision, compile=False,
                         cuda_graphs=False, threads=args.threads)
    sess, seen = label_branches(runner, feeds_for(runner, block_map(bundle.resolution, int(bundle.num_classes),
                                                                    seed=0)))
    rng = np.random.default_rng(0)

    def cpu_ms(fn: Any) -> float:
        return min(timed(fn)[2] for _ in range(args.runs))

    whole, tiled = 0.0, {(b, f): 0.0 for b in TUNE_BLOCKS for f in TUNE_FRACTIONS}
    layers = []
    with torch.inference_mode():
        for branch, label in seen:
            size = tuple(branch.scale.shape[-2:])
            t_whole = cpu_ms(lambda: branch.full(label))
            whole += t_whole
            row = {"size": list(size), "channels": int(branch.scale.shape[1]), "whole_cpu_ms": t_whole}
            for b in TUNE_BLOCKS:
                for f in TUNE_FRACTIONS:
                    t = tiles_ms(branch, label, b, f, rng, cpu_ms)
                    tiled[(b, f)] += t
                    row[f"B{b} {f:.0%}"] = t / t_whole
            layers.append(row)
            print(f"[edit_bench] tune {size} x{row['channels']}: whole {t_whole:.0f} ms; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.startswith("B")), flush=True)
    sess.close()
    ratios = {f"B{b} {f:.0%}": tiled[(b, f)] / whole for b in TUNE_BLOCKS for f in TUNE_FRACTIONS}
    for key, value in ratios.items():
        print(f"[edit_bench] tune all layers {key}: tiles / whole {value:.2f}", flush=True)
    return {"preset": name, "what": "label branches only: CPU time of T tiles / the whole layer, summed over the "
            "layers (min of runs)", "whole_cpu_ms": whole, "ratios": ratios, "layers": layers, **meta(args)}


def meta(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from sdk.engines import read_cpuinfo

    cpu = read_cpuinfo().get("model name") or platform.processor() or "unknown"
    return {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {cpu}",
            "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "precision": args.precision, "runs": args.runs, "warmup": args.warmup, "size": args.size,
            "note": args.note}


def write_report(rows: list[dict[str, Any]], info: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": info, "rows": rows}, indent=1))
    lines = [f"# Edit benchmark: full pass vs incremental update ({info['date']})", "",
             f"{info['machine']}, {info['device']}, {info['threads']} threads, torch {info['torch']}, "
             f"{info['precision']}, {info['size']} size; median of {info['runs']} runs after {info['warmup']} "
             f"warm-up rounds, full pass and update interleaved. Speed-up: median wall time of the full pass over "
             f"that of the update; in CPU time: the same with the process's CPU time (the work, without the "
             f"waits for a core on a loaded machine).", ""]
    if info.get("note"):
        lines += [info["note"], ""]
    lines += summary_table(rows) + ["", "Every edit:", ""]
    lines += ["| preset | map | edit | changed | full pass ms | incremental ms | speed-up | speed-up (CPU time) "
              "| label work redone | max diff (levels) | rel. L2 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['map']} | {r['edit']} {r['target']:.1%} | {r['changed']:.2%} | "
                     f"{r['full_ms']:.0f} | {r['incremental_ms']:.0f} | {r['speedup']:.2f}x | {r['speedup_cpu']:.2f}x | "
                     f"{r['recomputed']:.0%} | {r['max_levels']} | {r['rel_l2']:.1e} |")
    worst = max((r["max_levels"] for r in rows), default=0)
    lines += ["", f"Exactness: every incremental image within {worst} level(s) of the full pass of the same "
              f"feeds (8-bit), largest relative L2 of the float image "
              f"{max((r['rel_l2'] for r in rows), default=0):.1e}."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "speedup.png", info)


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """Speed-up per preset and map (rows) and edit (columns): wall time, CPU time in brackets."""
    edits = sorted({(r["edit"], r["target"]) for r in rows}, key=lambda e: (KINDS.index(e[0]), e[1]))
    lines = ["| preset (full pass) | map | " + " | ".join(f"{k} {f:.1%}" for k, f in edits) + " |",
             "|---|---|" + "---|" * len(edits)]
    for preset, map_name in dict.fromkeys((r["preset"], r["map"]) for r in rows):
        cells = {(r["edit"], r["target"]): r for r in rows if (r["preset"], r["map"]) == (preset, map_name)}
        full = statistics.median(r["full_ms"] for r in cells.values())
        lines.append(f"| {preset} ({full / 1e3:.1f} s) | {map_name} | " + " | ".join(
            f"{cells[e]['speedup']:.2f}x ({cells[e]['speedup_cpu']:.2f}x)" if e in cells else "" for e in edits) + " |")
    return lines


def plot(rows: list[dict[str, Any]], path: Path, info: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"stroke": "-o", "region": "--s"}
    for (preset, map_name, kind) in sorted({(r["preset"], r["map"], r["edit"]) for r in rows}):
        pts = sorted((r["changed"] * 100, r["speedup"]) for r in rows
                     if (r["preset"], r["map"], r["edit"]) == (preset, map_name, kind))
        ax.plot(*zip(*pts), styles[kind], label=f"{preset} {map_name} {kind}", markersize=4)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("pixels changed by the edit (%)")
    ax.set_ylabel("full pass / incremental update")
    ax.set_title(f"Incremental re-synthesis, torch {info['precision']}, {info['threads']} threads ({info['date']})",
                 fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.edit_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default: %(default)s)")
    p.add_argument("--size", choices=("full", "ci"), default="full")
    p.add_argument("--runs", type=int, default=20, help="timed rounds per edit (default %(default)s)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16", "tf32"))
    p.add_argument("--maps", default="blocks,sample", help="blocks, sample (default %(default)s)")
    p.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    p.add_argument("--out", default=f"benchmarks/results/edit-{datetime.date.today().isoformat()}")
    p.add_argument("--bundles", help="folder of the exported bundles (default OUT/bundles)")
    p.add_argument("--note", default="", help="a line for results.md (e.g. the machine's load)")
    p.add_argument("--tune", action="store_true", help="time block sizes and full_above on the first preset")
    p.add_argument("--report", metavar="RESULTS_JSON", help="only rewrite results.md and the plot from a results.json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.presets = [p for p in args.presets.split(",") if p]
    args.maps = [m for m in args.maps.split(",") if m]
    args.fractions = [float(f) for f in args.fractions.split(",") if f]
    args.out = Path(args.out)
    args.bundles = Path(args.bundles) if args.bundles else args.out / "bundles"
    if args.runs < 1 or args.warmup < 0:
        raise SystemExit("--runs must be >= 1 and --warmup >= 0")
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        write_report(saved["rows"], saved["meta"], Path(args.report).parent)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.tune:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tuning.json").write_text(json.dumps(tune(args), indent=1))
        return 0
    rows: list[dict[str, Any]] = []
    for name in args.presets:  # the report is rewritten after each preset: a long run keeps what it measured
        rows += bench_preset(name, args)
        write_report(rows, meta(args), args.out)
    print(f"[edit_bench] wrote {args.out}/results.json, results.md, speedup.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
