"""The runtime's commands: synthesize (label maps), sample (unconditional), translate
(image to image), morph (GroupDNet), resample (per-class codes: GroupDNet, OASIS) and
info; and the plumbing every CLI of the project shares (:class:`Parser`, :func:`run_cli`).

``python -m sdk`` is :mod:`sdk.services.cli`: these commands plus the doors beyond one
process (batch, serve, app), which live a layer above the runtime. Bad input exits with
status 2 and one line naming the problem and the fix.
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
from .atomic import atomic_path, check_writable
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
    """The --out path, checked before any work: not a folder, a suffix that fits --format,
    a place that can be written (not under a regular file, not in a read-only folder)."""
    path = check_writable(out, "--out")
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

    return Synthesizer.from_pretrained(args.bundle, backend=args.backend,
                                       label_format=getattr(args, "label_format", "dataset"), **_backend_options(args))


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
    out = check_writable(args.out) if gif else _check_out(args.out, args.format, args.n)
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
    check_writable(out)
    if args.steps < 2:
        raise SDKError(f"--steps must be >= 2 (the two end points), got {args.steps}")
    s = _open(args)
    frames = s.morph(args.image_a, args.label_a, args.image_b, args.label_b, steps=args.steps,
                     label=args.label, mode=args.mode)
    save_gif(frames, out, args.duration_ms)
    print(f"wrote {out} ({len(frames)} frames, {frames[0].width}x{frames[0].height}, per-class "
          f"{args.mode} from {args.image_a} to {args.image_b}, {s.runner().describe()})")
    return 0


def _class_list(text: str) -> list[int | str]:
    """--classes "21,23" or "sky-other,tree" -> [21, 23] / names (checked against the bundle later)."""
    items: list[int | str] = [int(x) if x.strip().lstrip("-").isdigit() else x.strip()
                              for x in text.split(",") if x.strip()]
    if not items:
        raise SDKError("--classes is empty; give class ids or names separated by commas, e.g. --classes 21,23")
    return items


def cmd_resample(args: argparse.Namespace) -> int:
    from .per_class import load_codes, save_codes

    gif = Path(args.out).suffix.lower() == ".gif"
    out = check_writable(args.out) if gif else _check_out(args.out, "image", 1)
    classes = _class_list(args.classes)
    if gif and (args.base_codes or args.save_codes):
        raise SDKError("a .gif interpolates from --base (a seed) to --seed: --base-codes and --save-codes "
                       "go with a single image (--out ending in .png)")
    if args.save_codes:
        if Path(args.save_codes).suffix.lower() != ".npy":
            raise SDKError(f"--save-codes writes a .npy array; give a file name ending in .npy, not "
                           f"{args.save_codes!r}")
        check_writable(args.save_codes, "--save-codes")
    base: Any = load_codes(args.base_codes) if args.base_codes else args.base
    s = _open(args)
    if gif:
        frames = s.interpolate_classes(args.label, seed_a=args.base, seed_b=args.seed, classes=classes,
                                       steps=args.steps, instance=args.instance)
        save_gif(frames, out, args.duration_ms)
        print(f"wrote {out} ({len(frames)} frames: classes {args.classes} from seed {args.base} to {args.seed}, "
              f"{frames[0].width}x{frames[0].height}, {s.runner().describe()})")
        return 0
    image, codes = s.resample(args.label, classes, seed=args.seed, base=base, instance=args.instance,
                              return_codes=True)
    _write([image], [out], s.runner(), "image")
    if args.save_codes:
        print(f"wrote {save_codes(args.save_codes, codes)} (codes {codes.shape[0]}x{codes.shape[1]})")
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
                  f"{convention.get('source', '')}); pass --label-format ids for maps of model ids")
    if m.parameters is not None:
        print(f"  parameters   {m.parameters / 1e6:.2f}M")
    for name, g in m.graphs.items():
        ins = ", ".join(f"{i.name}{i.shape}" for i in g.inputs)
        outs = ", ".join(f"{o.name}{o.shape}" for o in g.outputs)
        parity = g.parity.figures.get("onnxruntime_cpu", {}) if g.parity else {}
        worst = f"parity {max(parity.values()):.2e} (relative L2)" if parity else "no ONNX graph: torch backend only"
        print(f"  graph {name:<7} {g.file or '-'}: {ins} -> {outs}; {worst}")
        if (g.label_path or {}).get("onnx"):
            print(f"    label      {g.label_path['onnx']}")
    for key in m.engines:
        print(f"  engine       {key}")
    print(f"  weights      {_describe_source(m.weights)}")
    print("  files        " + ", ".join(f"{k} ({v['bytes'] / 1e6:.1f} MB)" for k, v in m.files.items()))
    print("  verified     " + ("no (--no-verify)" if args.no_verify else "sha256 of every file matches"))
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


def add_command(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help)


def backend_arg(parser: argparse.ArgumentParser) -> None:
    from .backends import available_backends

    parser.add_argument("--backend", default="auto",
                        help=f"auto (fastest available here) | {' | '.join(available_backends())}")


def _runtime_args(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    """--backend and the runner options every synthesis command takes."""
    backend_arg(parser)
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


class OldLabelsFlag(argparse.Action):
    """``--labels dataset|model``, the old name of ``--label-format`` (``model``: ``ids``):
    it still works for one version, with a one-line notice."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from .conventions import OLD_LABEL_FORMATS
        from .notices import notice

        new = OLD_LABEL_FORMATS.get(values, values)
        notice(f"--labels {values} is deprecated (it goes in the next version): use --label-format {new}")
        namespace.label_format = new


def label_format_arg(parser: argparse.ArgumentParser, what: str = "the label PNG") -> None:
    """--label-format dataset|ids: what label maps hold, at every door (the API's
    ``label_format=``); ``--labels dataset|model``, its old name, still works (deprecated)."""
    from .conventions import LABEL_FORMATS, OLD_LABEL_FORMATS

    parser.add_argument("--label-format", choices=LABEL_FORMATS, default="dataset",
                        help=f"dataset: {what} is the dataset's annotation file, mapped by the bundle's "
                             f"convention (python -m sdk info); ids: it holds model class ids already")
    parser.add_argument("--labels", choices=("dataset", *OLD_LABEL_FORMATS), action=OldLabelsFlag,
                        dest="label_format", help="deprecated: --label-format (model: ids)")


def _add_synthesize(sub: Any) -> None:
    """``synthesize``: label map PNG -> image."""
    s = add_command(sub, "synthesize", "label map PNG -> image")
    s.add_argument("--bundle", required=True, help="bundle folder (python -m export bundle ...)")
    s.add_argument("--label", required=True, help="label map PNG (index, grayscale or palette RGB)")
    s.add_argument("--instance", help="instance-id PNG (models with instance edges; 8- or 16-bit)")
    label_format_arg(s)
    s.add_argument("--style", help="style reference image (models with a style encoder)")
    s.add_argument("--seed", type=int, default=None, help="latent seed (>= 0); same seed, same image")
    s.add_argument("--n", type=int, default=1, help="number of samples (out_0.png, out_1.png, ...)")
    _runtime_args(s)
    _format_arg(s)
    s.add_argument("--out", required=True, help="output path (.png/.jpg; .npy with --format uint8/float)")
    s.set_defaults(func=cmd_synthesize)


def _add_sample(sub: Any) -> None:
    """``sample``: unconditional models, seed -> image(s) or an interpolation."""
    u = add_command(sub, "sample", "unconditional models: seed -> image(s), or an interpolation")
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


def _add_translate(sub: Any) -> None:
    """``translate``: image-to-image models, image -> image."""
    t = add_command(sub, "translate", "image-to-image models: image -> image")
    t.add_argument("--bundle", required=True, help="bundle folder of an image2image model (msgunet-*)")
    t.add_argument("--image", required=True, help="input image; resized to the model's resolution when "
                   "its aspect ratio matches, an error otherwise (crop or pad it first)")
    t.add_argument("--all-scales", action="store_true", help="write every output scale as OUT_<name>.png")
    _runtime_args(t, batch=False)
    t.add_argument("--out", required=True, help="output image path (.png)")
    t.set_defaults(func=cmd_translate)


def _add_morph(sub: Any) -> None:
    """``morph``: GroupDNet, the per-class appearance of image A morphing into B (GIF)."""
    m = add_command(sub, "morph", "GroupDNet: morph the per-class appearance of image A into B (GIF)")
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


def _add_resample(sub: Any) -> None:
    """``resample``: redraw the listed classes with another seed, keep the rest."""
    r = add_command(sub, "resample", "GroupDNet, OASIS: redraw the listed classes with another seed, keep the rest")
    r.add_argument("--bundle", required=True, help="bundle folder of a model with per-class codes "
                   "(groupdnet-*, oasis-*)")
    r.add_argument("--label", required=True, help="label map PNG (index, grayscale or palette RGB)")
    r.add_argument("--classes", required=True, help="classes to redraw, comma-separated: model class ids (e.g. "
                   "21,23) or the bundle's class names (sky-other,tree; python -m sdk info --json: label.classes)")
    r.add_argument("--seed", type=int, required=True, help="the listed classes take their codes from this seed")
    r.add_argument("--base", type=int, default=0, help="seed of every other class's code (the image of "
                   "`synthesize --seed BASE`)")
    r.add_argument("--base-codes", help="codes .npy of every other class instead of --base (e.g. --save-codes "
                   "of an earlier run)")
    r.add_argument("--save-codes", help="also write the rendered codes (C, D) to this .npy")
    r.add_argument("--instance", help="instance-id PNG (models with instance edges)")
    label_format_arg(r)
    r.add_argument("--steps", type=int, default=8, help="frames of a .gif --out, end points included")
    r.add_argument("--duration-ms", type=int, default=100, help="GIF frame time in milliseconds")
    _runtime_args(r, batch=False)
    r.add_argument("--out", required=True, help="output image (.png), or .gif: the classes moving from "
                   "--base to --seed")
    r.set_defaults(func=cmd_resample)


def _add_info(sub: Any) -> None:
    """``info``: describe a bundle and verify its files."""
    i = add_command(sub, "info", "describe a bundle and verify its files")
    i.add_argument("bundle_path", nargs="?", metavar="BUNDLE", help="bundle folder (or --bundle)")
    i.add_argument("--bundle", help="bundle folder")
    i.add_argument("--json", action="store_true", help="print the manifest")
    i.add_argument("--no-verify", action="store_true", help="skip sha256 checks")
    i.set_defaults(func=cmd_info)


def build_parser(extend: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """The parser of the runtime's commands; ``extend(subparsers)`` adds more (the doors)."""
    p = Parser(prog="python -m sdk", description="Semantic image synthesis from model bundles.")
    p.add_argument("--version", action="version", version=f"sdk {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    # The order is the order of `python -m sdk --help`.
    for add in (_add_synthesize, _add_sample, _add_translate, _add_morph, _add_resample, _add_info):
        add(sub)
    if extend is not None:
        extend(sub)
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


__all__ = ["OldLabelsFlag", "Parser", "add_command", "backend_arg", "build_parser", "label_format_arg", "main",
           "run_cli"]


def main(argv: Sequence[str] | None = None) -> int:
    """The runtime's commands alone (no batch, serve, app); ``python -m sdk`` has them all."""
    return run_cli(argv, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
