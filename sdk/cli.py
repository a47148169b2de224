"""``python -m sdk``: synthesize (label maps), sample (unconditional), translate (image to
image), inspect bundles, and beyond one process: batch (a data set on Ray), serve (an
HTTP endpoint on Ray Serve) and app (a painting page in the browser).

Bad input exits with status 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn, Sequence

import numpy as np

from . import __version__
from .animation import save_gif
from .atomic import atomic_path
from .errors import SDKError
from .inputs import check_count

if TYPE_CHECKING:
    from .backends import Runner
    from .synthesizer import Synthesizer


IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
FORMATS = ("image", "uint8", "float")
"""--format: an image file (PNG/JPEG by --out's suffix), or a .npy array: (H, W, 3) uint8,
or the graph's float image (3, H, W) in [-1, 1]."""


def _check_out(out: str, fmt: str, count: int) -> Path:
    """The --out path, checked before any work: not a folder, a suffix that fits --format."""
    path = Path(out)
    if path.is_dir():
        raise SDKError(f"--out {out} is a folder; give a file path such as {path / 'out.png'}")
    suffix = path.suffix.lower()
    if fmt == "image" and suffix not in IMAGE_SUFFIXES:
        raise SDKError(f"--out {out}: give an image file name ({', '.join(IMAGE_SUFFIXES)}), "
                       f"or --format uint8/float with a .npy name")
    if fmt != "image" and suffix != ".npy":
        raise SDKError(f"--format {fmt} writes a .npy array; give --out ending in .npy, not {path.name!r}")
    return path


def _save(item: Any, path: Path, fmt: str) -> None:
    """Write one image (PIL) or array atomically, in the file type of ``path``."""
    with atomic_path(path) as tmp:
        if fmt == "image":
            item.save(tmp, format=IMAGE_SUFFIXES[path.suffix.lower()])
        else:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(item), allow_pickle=False)


def _outputs(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    width = len(str(count - 1))
    return [out.with_name(f"{out.stem}_{i:0{width}d}{out.suffix}") for i in range(count)]


def _write(items: Iterable[Any], paths: Sequence[Path], runner: Runner, fmt: str) -> None:
    """Write images as they come (a stream keeps memory bounded); one line per file, or
    one summary line when there are many."""
    many = len(paths) > 20
    start, n = time.perf_counter(), 0
    for item, path in zip(items, paths):
        _save(item, path, fmt)
        n += 1
        if not many:
            shape = f"{item.width}x{item.height}" if fmt == "image" else "x".join(map(str, np.shape(item)))
            print(f"wrote {path} ({shape}, {runner.describe()}, {runner.last_inference_ms:.0f} ms)")
    if many:
        elapsed = time.perf_counter() - start
        print(f"wrote {n} files {paths[0].name} .. {paths[-1].name} in {paths[0].parent} "
              f"({runner.describe()}, {elapsed:.1f} s, {n / max(elapsed, 1e-9):.1f} images/s)")


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """Runner options the user set (--device, --threads, --precision); each runner checks its own."""
    return {k: getattr(args, k) for k in ("device", "threads", "precision") if getattr(args, k, None) is not None}


def _open(args: argparse.Namespace) -> Synthesizer:
    """The bundle's Synthesizer (the call then refuses a bundle of another task, naming the
    command it takes)."""
    from .synthesizer import Synthesizer

    return Synthesizer.from_pretrained(args.bundle, backend=args.backend, labels=getattr(args, "labels", "dataset"),
                                       **_backend_options(args))


def _output(fmt: str) -> str:
    return {"image": "pil", "uint8": "uint8", "float": "float"}[fmt]


def cmd_synthesize(args: argparse.Namespace) -> int:
    out = _check_out(args.out, args.format, args.n)
    s = _open(args)
    count = check_count(args.n, "--n")
    images = s.stream(args.label, seed=args.seed, style=args.style, instance=args.instance, n=count,
                      output=_output(args.format), batch_size=args.batch_size, progress=args.progress)
    _write(images, _outputs(out, count), s.runner(), args.format)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    gif = args.interpolate is not None and Path(args.out).suffix.lower() == ".gif"
    out = Path(args.out) if gif else _check_out(args.out, args.format, args.n)
    s = _open(args)
    if args.interpolate is None:
        count = check_count(args.n, "--n")
        images = s.stream(seed=args.seed, n=count, output=_output(args.format), batch_size=args.batch_size,
                          progress=args.progress)
        _write(images, _outputs(out, count), s.runner(), args.format)
        return 0
    seed_a = 0 if args.seed is None else args.seed
    frames = s.interpolate(seed_a=seed_a, seed_b=args.interpolate, steps=args.steps)
    if out.suffix.lower() == ".gif":
        save_gif(frames, out, args.duration_ms)
        print(f"wrote {out} ({len(frames)} frames, seed {seed_a} -> {args.interpolate}, "
              f"{frames[0].width}x{frames[0].height})")
    else:
        _write(frames, _outputs(out, len(frames)), s.runner(), "image")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    out = _check_out(args.out, "image", 1)
    s = _open(args)
    if not args.all_scales:
        _write([s.translate(args.image)], [out], s.runner(), "image")
        return 0
    scales = s.translate(args.image, all_scales=True)
    paths = [out.with_name(f"{out.stem}_{name}{out.suffix}") for name in scales]
    _write(list(scales.values()), paths, s.runner(), "image")
    return 0


def cmd_morph(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".gif" or out.is_dir():
        raise SDKError(f"morph writes an animated GIF; give --out ending in .gif, not {out.name!r}")
    if args.steps < 2:
        raise SDKError(f"--steps must be >= 2 (the two end points), got {args.steps}")
    s = _open(args)
    frames = s.morph(args.image_a, args.label_a, args.image_b, args.label_b, steps=args.steps,
                     label=args.label, mode=args.mode)
    save_gif(frames, out, args.duration_ms)
    print(f"wrote {out} ({len(frames)} frames, {frames[0].width}x{frames[0].height}, per-class "
          f"{args.mode} from {args.image_a} to {args.image_b}, {s.runner().describe()})")
    return 0


def _describe_source(weights: dict[str, Any]) -> str:
    """Where the weights came from, without the build machine's paths."""
    source = weights.get("source")
    if isinstance(source, list):
        return "checkpoint " + ", ".join("/".join(Path(p).parts[-2:]) for p in source)
    return str(source)


def cmd_info(args: argparse.Namespace) -> int:
    from .bundle import Bundle

    path = args.bundle or args.bundle_path
    if path is None:
        raise SDKError("give the bundle folder: python -m sdk info --bundle DIR")
    b = Bundle(path, verify=not args.no_verify)
    m = b.manifest
    if args.json:
        print(json.dumps(m.to_json(), indent=2))
        return 0
    if b.random_weights:
        print(f"WARNING: random weights ({m.weights['source']}): this bundle's images are noise-like; "
              f"export a trained or official checkpoint for real images")
    print(f"{m.name}  ({m.family}, {m.task})  at {b.path}")
    h, w = b.resolution
    print(f"  resolution   {h}x{w} (HxW)")
    if b.label:
        print(f"  labels       class ids 0..{b.num_classes - 1} (int32, one-hot made in the graph), "
              f"instance edges: {b.label.get('instance_edge')}")
        convention = b.label.get("convention")
        if convention:
            print(f"  label files  {convention['dataset']}: {convention['summary']} ({convention['name']}; "
                  f"{convention.get('source', '')}); pass --labels model for maps of model ids")
    if m.parameters is not None:
        print(f"  parameters   {m.parameters / 1e6:.2f}M")
    for name, g in m.graphs.items():
        ins = ", ".join(f"{i['name']}{tuple(i['shape'])}" for i in g["inputs"])
        outs = ", ".join(f"{o['name']}{tuple(o['shape'])}" for o in g["outputs"])
        parity = g.get("parity", {}).get("onnxruntime_cpu", {})
        worst = f"parity {max(parity.values()):.2e} (relative L2)" if parity else "no ONNX graph: torch backend only"
        print(f"  graph {name:<7} {g['file'] or '-'}: {ins} -> {outs}; {worst}")
        if (g.get("label_path") or {}).get("onnx"):
            print(f"    label      {g['label_path']['onnx']}")
    for key in m.engines:
        print(f"  engine       {key}")
    print(f"  weights      {_describe_source(m.weights)}")
    print("  files        " + ", ".join(f"{k} ({v['bytes'] / 1e6:.1f} MB)" for k, v in m.files.items()))
    print("  verified     " + ("no (--no-verify)" if args.no_verify else "sha256 of every file matches"))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import format_report, synthesize_dataset
    from .extras import require

    require("ray", "batch")
    report = synthesize_dataset(
        args.bundle, args.labels, args.out, seed=args.seed, address=args.address, workers=args.workers,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
        backend=args.backend, png_level=args.png_level)
    print(format_report(report, args.out))
    if report.failed:
        label, why = report.failed[0]
        raise SDKError(f"{len(report.failed)} label map(s) could not be synthesized, e.g. {label}: {why} "
                       f"(the others are done; fix these and re-run)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .extras import require
    from .serve import ServeOptions, serve_forever

    require("ray", "serve")
    try:
        serve_forever(args.bundle, ServeOptions(
            host=args.host, port=args.port, replicas=args.replicas, max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms, max_ongoing=args.max_ongoing, max_queued=args.max_queued,
            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica, backend=args.backend,
            png_level=args.png_level, request_timeout_s=args.request_timeout_s), address=args.address)
    except KeyboardInterrupt:  # Ctrl-C is how a server is meant to stop
        print("stopped", file=sys.stderr)
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from .app import launch
    from .extras import require

    require("gradio", "app")
    launch(args.bundle, host=args.host, port=args.port, backend=args.backend, seed=args.seed, label=args.label)
    return 0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``error: ...``, exit 2), like
    every other error of the CLIs; defaults shown in --help. Subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help)


def _backend_arg(parser: argparse.ArgumentParser) -> None:
    from .backends import available_backends

    parser.add_argument("--backend", default="auto",
                        help=f"auto (fastest available here) | {' | '.join(available_backends())}")


def _runtime_args(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    """--backend and the runner options every synthesis command takes."""
    _backend_arg(parser)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (torch, onnxruntime); default: the backend's")
    parser.add_argument("--threads", type=int, help="CPU threads (onnxruntime, torch); default: one per core")
    parser.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16", "int8"),
                        help="torch / engine precision (openvino: fp32, bf16, int8; onnxruntime-int8: int8); "
                             "default: the backend's (fp16 on a GPU, fp32 on CPU; a CPU engine: its fastest)")
    if batch:
        parser.add_argument("--batch-size", type=int, help="images per graph run; default: what memory allows")
        parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                            help="progress bar (default: when stderr is a terminal)")


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="image",
                        help="image: a PNG/JPEG file by --out's suffix; uint8: (H, W, 3) .npy; "
                             "float: the float image (3, H, W) in [-1, 1] as .npy")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m sdk", description="Semantic image synthesis from model bundles.")
    p.add_argument("--version", action="version", version=f"sdk {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = _parser(sub, "synthesize", "label map PNG -> image")
    s.add_argument("--bundle", required=True, help="bundle folder (python -m export bundle ...)")
    s.add_argument("--label", required=True, help="label map PNG (index, grayscale or palette RGB)")
    s.add_argument("--instance", help="instance-id PNG (models with instance edges; 8- or 16-bit)")
    s.add_argument("--labels", choices=("dataset", "model"), default="dataset",
                   help="dataset: the label PNG is the dataset's annotation file, mapped by the bundle's "
                        "convention (python -m sdk info); model: it holds model class ids already")
    s.add_argument("--style", help="style reference image (models with a style encoder)")
    s.add_argument("--seed", type=int, default=None, help="latent seed (>= 0); same seed, same image")
    s.add_argument("--n", type=int, default=1, help="number of samples (out_0.png, out_1.png, ...)")
    _runtime_args(s)
    _format_arg(s)
    s.add_argument("--out", required=True, help="output path (.png/.jpg; .npy with --format uint8/float)")
    s.set_defaults(func=cmd_synthesize)

    u = _parser(sub, "sample", "unconditional models: seed -> image(s), or an interpolation")
    u.add_argument("--bundle", required=True, help="bundle folder of an unconditional model (progan-*)")
    u.add_argument("--seed", type=int, default=None, help="latent seed (>= 0); same seed, same image "
                   "(the start of --interpolate, 0 when omitted)")
    u.add_argument("--n", type=int, default=1, help="number of samples (out_0.png, out_1.png, ...)")
    u.add_argument("--interpolate", type=int, default=None, metavar="SEED_B",
                   help="write frames interpolating from --seed to SEED_B (a GIF when --out ends in .gif)")
    u.add_argument("--steps", type=int, default=8, help="interpolation frames, end points included")
    u.add_argument("--duration-ms", type=int, default=100, help="GIF frame time in milliseconds")
    _runtime_args(u)
    _format_arg(u)
    u.add_argument("--out", required=True, help="output path (.png; .gif with --interpolate; .npy with --format)")
    u.set_defaults(func=cmd_sample)

    t = _parser(sub, "translate", "image-to-image models: image -> image")
    t.add_argument("--bundle", required=True, help="bundle folder of an image2image model (msgunet-*)")
    t.add_argument("--image", required=True, help="input image; resized to the model's resolution when "
                   "its aspect ratio matches, an error otherwise (crop or pad it first)")
    t.add_argument("--all-scales", action="store_true", help="write every output scale as OUT_<name>.png")
    _runtime_args(t, batch=False)
    t.add_argument("--out", required=True, help="output image path (.png)")
    t.set_defaults(func=cmd_translate)

    m = _parser(sub, "morph", "GroupDNet: morph the per-class appearance of image A into B (GIF)")
    m.add_argument("--bundle", required=True, help="bundle folder of a GroupDNet model (groupdnet-*)")
    m.add_argument("--image-a", required=True, help="first reference image")
    m.add_argument("--label-a", required=True, help="label map PNG of image A")
    m.add_argument("--image-b", required=True, help="second reference image")
    m.add_argument("--label-b", required=True, help="label map PNG of image B")
    m.add_argument("--label", help="label map to render the frames on (default: --label-a)")
    m.add_argument("--steps", type=int, default=8, help="frames, end points included")
    m.add_argument("--mode", choices=("slerp", "linear"), default="slerp",
                   help="per-class interpolation of the codes")
    m.add_argument("--duration-ms", type=int, default=100, help="GIF frame time in milliseconds")
    _runtime_args(m, batch=False)
    m.add_argument("--out", required=True, help="output animated GIF (.gif)")
    m.set_defaults(func=cmd_morph)

    b = _parser(sub, "batch", "a folder / glob / list of label maps -> one PNG each, on Ray")
    b.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
    b.add_argument("--labels", required=True, help="folder (every *.png under it), glob ('maps/*.png') or "
                   "text file listing label PNGs (relative to its folder)")
    b.add_argument("--out", required=True, help="output folder: one PNG per label (same relative path) "
                   "and records.jsonl; a re-run skips finished images")
    b.add_argument("--seed", type=int, default=0, help="global seed; each image's seed is a hash of "
                   "(seed, label path relative to the labels root)")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    b.add_argument("--workers", type=int, default=None, help="Synthesizer actors (default: one per GPU, "
                   "else one per --cpus-per-worker CPUs)")
    b.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs per actor (default 1; "
                   "onnxruntime threads)")
    b.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per actor (default 1 where "
                   "the cluster has GPUs)")
    b.add_argument("--batch-size", type=int, default=8, help="label maps per runner call")
    b.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0-9",
                   help="PNG compression level (1: fast; 6: PIL's default, ~5x slower to write)")
    _backend_arg(b)
    b.set_defaults(func=cmd_batch)

    v = _parser(sub, "serve", "HTTP endpoint over a bundle on Ray Serve, with dynamic batching")
    v.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
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
    v.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs per replica (onnxruntime threads)")
    v.add_argument("--gpus-per-replica", type=float, default=None, help="GPUs per replica (default 1 "
                   "where the cluster has GPUs)")
    v.add_argument("--png-level", type=int, default=1, choices=range(10), metavar="0-9",
                   help="PNG compression level of responses")
    v.add_argument("--request-timeout-s", type=float, default=30.0, help="a request not answered by then gets 408")
    v.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    _backend_arg(v)
    v.set_defaults(func=cmd_serve)

    a = _parser(sub, "app", "paint a label map in the browser and watch the image change (Gradio)")
    a.add_argument("--bundle", required=True, help="bundle folder of a label-to-image model")
    a.add_argument("--label", default=None, help="label map to start from (default: a blank map of the "
                   "first class)")
    a.add_argument("--seed", type=int, default=0, help="initial seed")
    a.add_argument("--host", default="127.0.0.1", help="address to listen on")
    a.add_argument("--port", type=int, default=7860)
    _backend_arg(a)
    a.set_defaults(func=cmd_app)


    i = _parser(sub, "info", "describe a bundle and verify its files")
    i.add_argument("bundle_path", nargs="?", metavar="BUNDLE", help="bundle folder (or --bundle)")
    i.add_argument("--bundle", help="bundle folder")
    i.add_argument("--json", action="store_true", help="print the manifest")
    i.add_argument("--no-verify", action="store_true", help="skip sha256 checks")
    i.set_defaults(func=cmd_info)
    return p


OPTIONAL_PACKAGES = {"torch": "torch", "safetensors": "torch", "onnx": "torch", "onnxscript": "torch",
                     "yaml": "train", "tqdm": "train", "matplotlib": "train", "tensorboard": "train"}
"""Packages of the optional extras: a command that needs one says which extra installs it."""


def run_cli(argv: Sequence[str] | None, parser: argparse.ArgumentParser,
            user_errors: tuple[type[BaseException], ...] | Callable[[], tuple[type[BaseException], ...]] = ()) -> int:
    """Parse and dispatch; user errors become one ``error:`` line and exit status 2.

    ``user_errors`` may be a callable, called after parsing, so that ``--help`` works
    without the packages that define them. A missing optional package (torch for export
    and training) is one line naming the extra that installs it.
    """
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        errors = user_errors() if callable(user_errors) else user_errors
        return func(args)
    except ImportError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in OPTIONAL_PACKAGES:
            raise
        print(f"error: this command needs {root} (not installed here): pip install -e \".[{OPTIONAL_PACKAGES[root]}]\" "
              f"(or pip install \"sdk[{OPTIONAL_PACKAGES[root]}]\")", file=sys.stderr)
        return 2
    except (SDKError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if errors and isinstance(exc, errors):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
