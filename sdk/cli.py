"""``python -m sdk``: synthesize images from a bundle, inspect a bundle.

Bad input exits with status 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from .atomic import atomic_path
from .errors import SDKError


def _save_image(img, out: Path) -> None:
    fmt = (out.suffix.lstrip(".") or "png").upper()
    fmt = "JPEG" if fmt == "JPG" else fmt
    with atomic_path(out) as tmp:
        img.save(tmp, format=fmt)


def _outputs(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .synthesizer import Synthesizer

    s = Synthesizer.from_pretrained(args.bundle, backend=args.backend)
    result = s(args.label, seed=args.seed, style=args.style, instance=args.instance, n=args.n)
    images = result if isinstance(result, list) else [result]
    for img, path in zip(images, _outputs(Path(args.out), len(images))):
        _save_image(img, path)
        print(f"wrote {path} ({img.width}x{img.height}, {s.runner().describe()}, "
              f"{s.runner().last_inference_ms:.0f} ms)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .bundle import Bundle

    b = Bundle(args.bundle, verify=not args.no_verify)
    m = b.manifest
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"{m['name']}  ({m['family']}, {m['task']})  at {b.path}")
    h, w = b.resolution
    print(f"  resolution   {h}x{w} (HxW)")
    if b.label:
        print(f"  labels       ids 0..{b.num_classes - 1}, instance edges: {b.label.get('instance_edge')}")
    if "parameters" in m:
        print(f"  parameters   {m['parameters'] / 1e6:.2f}M")
    for name, g in m["graphs"].items():
        ins = ", ".join(f"{i['name']}{tuple(i['shape'])}" for i in g["inputs"])
        outs = ", ".join(f"{o['name']}{tuple(o['shape'])}" for o in g["outputs"])
        parity = g.get("parity", {}).get("onnxruntime_cpu", {})
        worst = max(parity.values()) if parity else float("nan")
        print(f"  graph {name:<7} {g['file']}: {ins} -> {outs}; parity {worst:.2e} (relative L2)")
    print(f"  weights      {m.get('weights', {}).get('source')}")
    print("  files        " + ", ".join(f"{k} ({v['bytes'] / 1e6:.1f} MB)" for k, v in m["files"].items()))
    print("  verified     " + ("no (--no-verify)" if args.no_verify else "sha256 of every file matches"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdk", description="Semantic image synthesis from model bundles.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synthesize", help="label map PNG -> image")
    s.add_argument("--bundle", required=True, help="bundle folder (python -m export bundle ...)")
    s.add_argument("--label", required=True, help="label map PNG (index, grayscale or palette RGB)")
    s.add_argument("--instance", help="instance-id PNG (models with instance edges)")
    s.add_argument("--style", help="style reference image (models with a style encoder)")
    s.add_argument("--seed", type=int, default=None, help="latent seed; same seed, same image")
    s.add_argument("--n", type=int, default=1, help="number of samples (out_0.png, out_1.png, ...)")
    s.add_argument("--backend", default="auto", help="auto | onnxruntime | torch")
    s.add_argument("--out", required=True, help="output image path (.png)")
    s.set_defaults(func=cmd_synthesize)

    i = sub.add_parser("info", help="describe a bundle and verify its files")
    i.add_argument("bundle")
    i.add_argument("--json", action="store_true", help="print the manifest")
    i.add_argument("--no-verify", action="store_true", help="skip sha256 checks")
    i.set_defaults(func=cmd_info)
    return p


def run_cli(argv: Sequence[str] | None, parser: argparse.ArgumentParser,
            user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse and dispatch; user errors become one ``error:`` line and exit status 2."""
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SDKError, FileNotFoundError, *user_errors) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
