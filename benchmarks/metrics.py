"""``python -m benchmarks.metrics --real DIR --fake DIR``: quality metrics of two image folders.

Images are paired by file name (PNG / JPEG, RGB, one size); the pairwise metrics of
``sdk.train.metrics`` (PSNR, SSIM, MS-SSIM, SWD) are printed as JSON, or written with
``--out``. The training loop computes the same metrics (``log.metrics`` of a config).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

SUFFIXES = (".png", ".jpg", ".jpeg")


def load_folder(folder: Path, names: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(names, (N, 3, H, W) uint8) of the images in ``folder`` (or those ``names``)."""
    from PIL import Image

    from sdk.errors import SDKError

    if not folder.is_dir():
        raise SDKError(f"{folder} is not a folder of images")
    names = names or sorted(p.name for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not names:
        raise SDKError(f"{folder} holds no {'/'.join(SUFFIXES)} images")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SDKError(f"{folder} lacks {missing[0]} (images are paired by file name)")
    arrays = [np.asarray(Image.open(folder / n).convert("RGB")) for n in names]
    if len({a.shape for a in arrays}) != 1:
        raise SDKError(f"the images in {folder} differ in size; resize them to one size first")
    return names, np.stack(arrays).transpose(0, 3, 1, 2)


def main(argv: Sequence[str] | None = None) -> int:
    from sdk.cli import Parser, run_cli
    from sdk.train.metrics import PAIRWISE

    p = Parser(prog="python -m benchmarks.metrics", description=__doc__.split("\n\n")[0])
    p.add_argument("--real", required=True, help="folder of reference images")
    p.add_argument("--fake", required=True, help="folder of generated images with the same file names")
    p.add_argument("--metrics", default="psnr,ssim", help=f"comma-separated subset of {','.join(PAIRWISE)}")
    p.add_argument("--out", help="write the JSON here instead of printing it")
    p.set_defaults(func=_run)
    return run_cli(argv, p)


def _run(args: argparse.Namespace) -> int:
    from sdk.atomic import write_bytes_atomic
    from sdk.errors import SDKError
    from sdk.train.metrics import PAIRWISE, evaluate

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    bad = [m for m in names if m not in PAIRWISE]
    if bad:
        raise SDKError(f"--metrics: {bad[0]!r} is none of {', '.join(PAIRWISE)}")
    files, fake = load_folder(Path(args.fake))
    _, real = load_folder(Path(args.real), files)
    if fake.shape != real.shape:
        raise SDKError(f"real images are {real.shape[2]}x{real.shape[3]}, generated ones {fake.shape[2]}x"
                       f"{fake.shape[3]}: give images of one size")
    result = {"images": len(files), **evaluate(names, fake, real)}
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        write_bytes_atomic(args.out, text.encode())
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
