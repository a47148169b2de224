"""``python -m export``: list presets, write bundles."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from sdk import __version__
from sdk.cli import Parser, run_cli
from sdk.export.engine_records import parse_batch_profile


def cmd_list(args: argparse.Namespace) -> int:
    from sdk.train.models import get_preset, list_models
    from sdk.train.models.flops import count_params, graph_flops

    print(f"{'preset':<28} {'family':<10} {'task':<13} {'HxW':>10} {'classes':>7} {'params':>9} "
          f"{'paper':>8} {'GFLOPs':>8}")
    for name in list_models(args.family):
        p = get_preset(name)
        import torch

        with torch.device("meta"):
            model = p.build()
        params = count_params(model)
        gflops = graph_flops(name) / 1e9 if not args.no_flops else float("nan")
        cfg = p.config
        classes = getattr(cfg, "num_classes", None)
        paper = f"{p.paper_params / 1e6:.1f}M" if p.paper_params else "-"
        print(f"{name:<28} {p.family:<10} {model.task:<13} {f'{cfg.height}x{cfg.width}':>10} "
              f"{classes if classes is not None else '-':>7} {params / 1e6:>8.1f}M {paper:>8} {gflops:>8.1f}")
    print("\nparams: all parameters of the deployed networks (generator + encoder where present); "
          "GFLOPs: synthesis graph, batch 1, FlopCounterMode (MAC = 2 FLOPs)")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from sdk.export.bundle import build_bundle

    out = args.out or f"bundles/{args.model}"
    start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[export {time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    manifest = build_bundle(args.model, out, checkpoints=args.checkpoint or (), seed=args.seed, opset=args.opset,
                            label_lookup=not args.no_label_lookup, onnx=args.onnx, progress=progress)
    for name, g in manifest.graphs.items():
        if g.file is None or g.parity is None:
            print(f"[export] {name}: no ONNX graph (--no-onnx): torch backend only")
            continue
        parity = g.parity.figures["onnxruntime_cpu"]
        lookups = f", {g.label_lookups} label convolutions as lookups" if g.label_lookups else ""
        print(f"[export] {name}: parity " + ", ".join(f"{k} {v:.2e}" for k, v in parity.items())
              + f", 8-bit image within {g.parity.u8_max_levels} level" + lookups)
    size = sum(f["bytes"] for f in manifest.files.values())
    print(f"[export] wrote {out} ({size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
    if not args.checkpoint:
        print(f"WARNING: no --checkpoint: {args.model} has random weights (seed {args.seed}), so its images are "
              f"noise-like; give a trained or official checkpoint for real images", flush=True)
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    from sdk.engines import BACKEND_PRECISIONS, CPU_ENGINE_BACKENDS
    from sdk.export.engine_build import EngineBuildError, build_engine

    precision = args.precision
    cpu = args.backend in CPU_ENGINE_BACKENDS
    if precision is None:
        if cpu:
            precision = "int8"
        else:
            import torch

            precision = "fp32" if args.backend == "aoti" and not torch.cuda.is_available() else "fp16"
    if precision not in BACKEND_PRECISIONS[args.backend]:
        raise EngineBuildError(f"--precision {precision} is not one {args.backend} builds; choose "
                               f"{', '.join(BACKEND_PRECISIONS[args.backend])}")
    options = {}
    if cpu:
        options = {"calibration": args.calibration, "calibration_size": args.calibration_size, "threads": args.threads,
                   "escalate": args.escalate, "label_convs": args.label_convs}
        if args.keep_float is not None:
            from sdk.export.quantize import NODE_GROUPS

            groups = tuple(g for g in args.keep_float.split(",") if g)
            unknown = [g for g in groups if g not in NODE_GROUPS]
            if unknown:
                raise EngineBuildError(f"--keep-float {','.join(unknown)}: no such node group; choose from "
                                       f"{','.join(NODE_GROUPS)}")
            options["keep_float"] = groups
    elif (args.calibration != "procedural" or args.threads or args.keep_float is not None or not args.escalate
          or args.label_convs != "auto"):
        raise EngineBuildError("--calibration, --keep-float, --no-escalation, --label-convs and --threads are options "
                               "of the CPU engines (openvino, onnxruntime-int8)")
    start = time.perf_counter()
    record = build_engine(args.bundle, args.backend, precision=precision, batch=args.batch,
                          shapes=args.shapes or (), progress=lambda msg: print(f"[engine] {msg}", flush=True),
                          **options)
    if cpu and record.quality is not None and record.speed is not None:
        q, s = record.quality, record.speed
        kept = (record.notes.get("escalation") or {}).get("kept_float_groups")
        print(f"[engine] model: worst held-out image {q.worst_psnr_db} dB, mean {q.mean_psnr_db} dB vs the FP32 "
              f"graph (bar {q.bar_psnr_db:g} on the worst), {s.median_ms:.3g} ms vs onnxruntime "
              f"FP32 {s.onnxruntime_fp32_ms:.3g} ms ({s.speedup:.2f}x)"
              + (f"; kept float to meet the bar: {', '.join(kept)}" if kept else ""))
    for graph, figures in (record.parity.figures if record.parity else {}).items():
        print(f"[engine] {graph}: parity " + ", ".join(f"{k} {v:.2e}" for k, v in figures.items()
                                                       if k.startswith("batch_")))
    for graph, probe in record.failed_probes().items():
        print(f"[engine] {graph}: the package crashed when loaded in a fresh process ({probe.detail}); "
              f"the runtime runs the torch backend instead")
    print(f"[engine] wrote {record.files} ({record.key}) in {time.perf_counter() - start:.0f} s")
    return 0


def _batch_profile(text: str) -> object:
    try:
        return parse_batch_profile(text)
    except ValueError as exc:  # argparse shows this message instead of "invalid value"
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export", description="Export networks to deployable bundles.")
    p.add_argument("--version", action="version", version=f"sdk {__version__} (python -m export)")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="presets with resolution, classes, parameters and GFLOPs")
    ls.add_argument("--family", help="only this family")
    ls.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    ls.set_defaults(func=cmd_list)

    b = sub.add_parser("bundle", help="export a preset (random or loaded weights) to a bundle folder")
    b.add_argument("--model", required=True, help="preset name (python -m export list)")
    b.add_argument("--checkpoint", action="append",
                   help="weights: official files (latest_net_G.pth, latest_net_E.pth...) or weights.safetensors; repeatable")
    b.add_argument("--seed", type=int, default=0, help="seed of random weights and parity inputs")
    b.add_argument("--out", help="bundle folder (default bundles/MODEL)")
    b.add_argument("--opset", type=int, default=20, help="ONNX opset (20 default; 23 for native Attention)")
    b.add_argument("--no-label-lookup", action="store_true",
                   help="keep convolutions over the one-hot label map as convolutions (default: table lookups "
                        "where the label has many classes; same numbers, faster on CPU)")
    b.add_argument("--no-onnx", dest="onnx", action="store_false",
                   help="weights and manifest only, no ONNX graphs: for the torch (GPU) runner, exported in "
                        "seconds; onnxruntime and TensorRT refuse such a bundle")
    b.set_defaults(func=cmd_bundle)

    e = sub.add_parser("engine", help="build an engine for this machine into a bundle: TensorRT plan, AOTInductor "
                                      "package, OpenVINO IR or INT8 ONNX graph")
    e.add_argument("--bundle", required=True, help="bundle folder")
    e.add_argument("--backend", required=True, choices=("tensorrt", "aoti", "openvino", "onnxruntime-int8"))
    e.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16", "int8"),
                   help="tensorrt/aoti: default fp16 on GPU, fp32 for aoti on CPU (CPU: fp32 or bf16); "
                        "openvino: fp32, bf16 or int8 (default); onnxruntime-int8: int8")
    e.add_argument("--calibration", default="procedural",
                   help="INT8 calibration label maps: procedural (default: every class of the bundle, scene layouts "
                        "and clutter maps), samples, or a folder of label PNGs (read as the SDK reads labels)")
    e.add_argument("--calibration-size", type=int, default=16, help="INT8: label maps to calibrate on (default 16)")
    e.add_argument("--keep-float", default=None, metavar="GROUPS",
                   help="INT8: node groups to leave float from the start, comma-separated, of last_conv, attention, "
                        "modulation, label_convs, input_convs, main_path (default: last_conv,attention)")
    e.add_argument("--no-escalation", dest="escalate", action="store_false",
                   help="INT8: do not keep more node groups float when the worst held-out image misses the bar "
                        "(refuse the engine instead)")
    e.add_argument("--label-convs", default="auto", choices=("auto", "lookups", "convolutions"),
                   help="CPU engines: build from the bundle's label lookups or re-export them as convolutions over "
                        "the one-hot map (needs torch); auto (default): convolutions for OpenVINO BF16 / INT8, "
                        "whose matrix units run them faster than the lookups")
    e.add_argument("--threads", type=int, default=None,
                   help="CPU engines: threads for the quality and speed checks (default: all cores)")
    e.add_argument("--batch", default="1:4:8", type=_batch_profile,
                   help="tensorrt/aoti: dynamic batch profile MIN:OPT:MAX (default 1:4:8); CPU engines keep the "
                        "graph's dynamic batch")
    e.add_argument("--shapes", nargs="*", help="non-batch dims per input, NAME=DxDx... (checks; graphs are static)")
    e.set_defaults(func=cmd_engine)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix (imported after parsing: --help needs no torch)."""
    from sdk.export.engine_build import EngineBuildError
    from sdk.export.engine_cpu import QualityError
    from sdk.export.parity import ParityError
    from sdk.train.models.official import CheckpointMismatch
    from sdk.train.models.registry import UnknownModelError

    return CheckpointMismatch, ParityError, UnknownModelError, EngineBuildError, QualityError


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, build_parser(), _user_errors)


if __name__ == "__main__":
    sys.exit(main())
