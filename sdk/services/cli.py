"""``python -m sdk``: the runtime's commands (:mod:`sdk.cli`: synthesize, sample, translate,
morph, info) and the doors beyond one process: batch (a data set on Ray), serve (an HTTP
endpoint on Ray Serve) and app (a painting page in the browser).

Bad input exits with status 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from sdk import SDKError
from sdk.cli import add_command, backend_arg, build_parser, label_format_arg, run_cli
from sdk.conventions import LABEL_FORMATS, OLD_LABEL_FORMATS
from sdk.extras import require
from sdk.notices import notice

INSTANCES_HELP = ("instance maps (models trained with instance edges): a pattern relative to each label's folder "
                  "with {stem} (label name without .png) and {prefix} (the stem up to its last '_'), e.g. "
                  "'{prefix}_instanceIds.png' for Cityscapes, '../val_inst/{stem}.png' for COCO-Stuff; or a "
                  "folder with the labels' relative paths")


def cmd_batch(args: argparse.Namespace) -> int:
    require("ray", "batch")
    from .batch import format_report, synthesize_dataset

    inputs, label_format = _batch_inputs(args)
    report = synthesize_dataset(
        args.bundle, inputs, args.out, label_format=label_format, instances=args.instances, seed=args.seed,
        address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size, backend=args.backend,
        png_level=args.png_level)
    print(format_report(report, args.out))
    if args.input is None:  # said after the run: a bad folder's error stays the one line of its output
        notice(f"--labels FOLDER is deprecated (it goes in the next version): use --input {inputs}")
    if report.failed:
        raise SDKError(f"{len(report.failed)} of {report.total} label maps failed (each listed above, and in "
                       f"{report.records} with its error); the others are done: fix those and re-run")
    return 0


def _batch_inputs(args: argparse.Namespace) -> tuple[str, str]:
    """(--input, --label-format). ``--labels`` is the old name of both, deprecated: a label
    format (``dataset``, ``model``: ``ids``) or, before --input existed, the label maps."""
    old, label_format = args.labels, args.label_format
    if old in (*LABEL_FORMATS, *OLD_LABEL_FORMATS):
        label_format = OLD_LABEL_FORMATS.get(old, old)
        notice(f"--labels {old} is deprecated (it goes in the next version): use --label-format {label_format}")
    elif old is not None:
        if args.input is not None:
            raise SDKError(f"--labels takes dataset or model (its new name: --label-format dataset|ids), got "
                           f"{old!r}; the label maps are --input")
        return old, label_format
    if args.input is None:
        raise SDKError("give the label maps: --input FOLDER, GLOB or LIST_FILE")
    return args.input, label_format


def cmd_serve(args: argparse.Namespace) -> int:
    require("ray", "serve")
    from .serve import ServeOptions, serve_forever

    try:
        serve_forever(args.bundle, ServeOptions(
            host=args.host, port=args.port, replicas=args.replicas, max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms, max_ongoing=args.max_ongoing, max_queued=args.max_queued,
            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica, backend=args.backend,
            png_level=args.png_level, request_timeout_s=args.request_timeout_s, label_format=args.label_format),
            address=args.address)
    except KeyboardInterrupt:  # Ctrl-C is how a server is meant to stop
        print("stopped", file=sys.stderr)
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    require("gradio", "app")
    from .app import launch

    launch(args.bundle, host=args.host, port=args.port, backend=args.backend, seed=args.seed, label=args.label,
           instance=args.instance, label_format=args.label_format, threads=args.threads,
           incremental=args.incremental)
    return 0


def _add_batch(sub: Any) -> None:
    """``batch``: a folder / glob / list of label maps -> one PNG each, on Ray."""
    b = add_command(sub, "batch", "a folder / glob / list of label maps -> one PNG each, on Ray")
    b.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
    b.add_argument("--input", help="folder (every *.png under it), glob ('maps/*.png') or text file listing "
                   "label PNGs (relative to its folder)")
    b.add_argument("--label-format", choices=LABEL_FORMATS, default="dataset",
                   help="dataset: the label PNGs are the dataset's annotation files, mapped by the bundle's "
                        "convention (python -m sdk info); ids: they hold model class ids already")
    b.add_argument("--labels", default=None, metavar="{dataset,model} or FOLDER",
                   help="deprecated: --label-format (model: ids), or, before --input existed, the label maps")
    b.add_argument("--instances", default=None, help=INSTANCES_HELP)
    b.add_argument("--out", required=True, help="output folder: one PNG per label (same relative path) "
                   "and records.jsonl; a re-run skips finished images")
    b.add_argument("--seed", type=int, default=0, help="global seed; each image's seed is a hash of "
                   "(seed, label path relative to the labels root)")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    b.add_argument("--workers", type=int, default=None, help="Synthesizer actors (default: one per GPU, "
                   "else one per --cpus-per-worker CPUs)")
    b.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs per actor (default 1; "
                   "inference threads)")
    b.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per actor (default 1 where "
                   "the cluster has GPUs)")
    b.add_argument("--batch-size", type=int, default=8, help="label maps per runner call")
    b.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0-9",
                   help="PNG compression level (1: fast; 6: PIL's default, ~5x slower to write)")
    backend_arg(b)
    b.set_defaults(func=cmd_batch)


def _add_serve(sub: Any) -> None:
    """``serve``: an HTTP endpoint over a bundle on Ray Serve."""
    v = add_command(sub, "serve", "HTTP endpoint over a bundle on Ray Serve, with dynamic batching")
    v.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
    label_format_arg(v, "each posted label PNG")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--replicas", type=int, default=1, help="model replicas (one Synthesizer each)")
    v.add_argument("--max-batch", type=int, default=8, help="most requests run as one batch (1: no batching)")
    v.add_argument("--batch-wait-ms", type=float, default=10.0, help="longest a request waits for a batch "
                   "to fill")
    v.add_argument("--max-ongoing", type=int, default=None, help="requests a replica holds at once "
                   "(default max(2 x --max-batch, 64); more wait in Ray's router, which backs off)")
    v.add_argument("--max-queued", type=int, default=64, help="requests waiting for a replica before the "
                   "server answers 503")
    v.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs per replica (inference threads)")
    v.add_argument("--gpus-per-replica", type=float, default=None, help="GPUs per replica (default 1 "
                   "where the cluster has GPUs)")
    v.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0-9",
                   help="PNG compression level of responses")
    v.add_argument("--request-timeout-s", type=float, default=30.0, help="a request not answered by then gets 408")
    v.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    backend_arg(v)
    v.set_defaults(func=cmd_serve)


def _add_app(sub: Any) -> None:
    """``app``: the Gradio painting app."""
    a = add_command(sub, "app", "paint a label map in the browser and watch the image change (Gradio)")
    a.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
    a.add_argument("--label", default=None, help="label map to start from (default: a blank map of the "
                   "first class)")
    a.add_argument("--instance", default=None, help="instance map of --label (models trained with instance edges)")
    label_format_arg(a, "--label")
    a.add_argument("--seed", type=int, default=0, help="initial seed")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on")
    a.add_argument("--port", type=int, default=7860)
    a.add_argument("--threads", type=int, default=None, help="CPU inference threads (default: the backend's)")
    a.add_argument("--incremental", action=argparse.BooleanOptionalAction, default=True,
                   help="each stroke redoes only the work it reaches (torch backend, SPADE / OASIS / GroupDNet; "
                        "elsewhere full passes, and the page says why); --no-incremental: a full pass per stroke")
    backend_arg(a)
    a.set_defaults(func=cmd_app)


def add_doors(sub: Any) -> None:
    """The batch, serve and app subcommands."""
    for add in (_add_batch, _add_serve, _add_app):
        add(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdk``: every command."""
    return run_cli(argv, build_parser(add_doors))


__all__ = ["add_doors", "main"]
