"""How local is "redraw one class"? OASIS and GroupDNet on block label maps, and the figure.

    python benchmarks/resample_locality.py [--oasis BUNDLE] [--groupdnet BUNDLE] [--maps 4]
        [--figure docs/resample_locality.png] [--json benchmarks/results/resample-locality/results.json]

For each bundle and each of ``--maps`` block label maps (a 4x4 grid of uniform blocks, each
a random class; the class of block (1, 1) is redrawn): the base image is ``s(label,
seed=0)``; the class is redrawn with seeds 1, 2, 3 (``s.resample(label, [c], seed=k)``,
every other class keeps seed 0's code). A pixel *moves* when one of its channels changes
by more than ``LEVELS`` (8) of 255. Reported: the share of pixels outside the class grown
by ``GROW`` (16) px (a 33x33 square) that move, and the share inside the class that move,
averaged over seeds and maps.

Without ``--oasis`` / ``--groupdnet`` the CI-size bundles of oasis-ade20k and
groupdnet-deepfashion are exported (random weights, batch-norm statistics calibrated on
seeded batches, as every random-weight bundle) into
``benchmarks/results/resample-locality/bundles/``: their images are noise-like, but where
the change goes is the networks' structure (OASIS' noise reaches its first, coarse layers,
whose 3x3 convolutions on the 8x8 grid spread it; GroupDNet's early layers are grouped by
class). Give trained bundles to see it on real images. ``tests/benchmarks/
test_resample_locality.py`` pins the CI-size figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GROW = 16
LEVELS = 8
SEEDS = (1, 2, 3)
BASE = 0
GRID = 4
PRESETS = {"oasis": "oasis-ade20k", "groupdnet": "groupdnet-deepfashion"}


def block_map(size: tuple[int, int], classes: int, seed: int, grid: int = GRID) -> np.ndarray:
    """A ``grid`` x ``grid`` map of uniform blocks, each a random class (seeded)."""
    h, w = size
    coarse = np.random.default_rng(seed).integers(0, classes, (grid, grid))
    rows = (np.arange(h) * grid) // h
    cols = (np.arange(w) * grid) // w
    return coarse[rows][:, cols]


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` dilated by ``px`` pixels in every direction (a (2 px + 1) square)."""
    out = mask.copy()
    for axis in (0, 1):  # separable: a square is a row dilation then a column one
        src, n = out.copy(), out.shape[axis]
        for d in range(1, px + 1):
            if d >= n:
                break
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(d, None), slice(None, n - d)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def redraw(s: Any, label: np.ndarray, cls: int, seeds: Sequence[int] = SEEDS) -> tuple[np.ndarray, list[np.ndarray]]:
    """The base image (seed ``BASE``) and the class redrawn with each seed, as uint8 arrays."""
    base = np.asarray(s(label, seed=BASE), dtype=np.int16)
    return base, [np.asarray(s.resample(label, [cls], seed=k, base=BASE), dtype=np.int16) for k in seeds]


def moved(base: np.ndarray, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per image, the pixels with a channel changed by more than ``LEVELS``."""
    return [np.abs(x - base).max(-1) > LEVELS for x in images]


def measure(s: Any, maps: int = 4) -> dict[str, Any]:
    """The locality figures of bundle ``s`` (a Synthesizer with ``label_format="ids"``)."""
    outside, inside = [], []
    for m in range(maps):
        label = block_map(s.bundle.resolution, s.bundle.num_classes, seed=m)
        h, w = label.shape
        cls = int(label[h // GRID + h // (2 * GRID), w // GRID + w // (2 * GRID)])  # block (1, 1)
        mask = label == cls
        far = ~grow(mask, GROW)
        base, images = redraw(s, label, cls)
        for mv in moved(base, images):
            outside.append(float(mv[far].mean()) if far.any() else 0.0)
            inside.append(float(mv[mask].mean()))
    return {"bundle": s.bundle.name, "weights": str(s.bundle.manifest.weights.get("source")),
            "resolution": list(s.bundle.resolution), "maps": maps, "seeds": list(SEEDS),
            "outside_moved": round(float(np.mean(outside)), 4), "inside_moved": round(float(np.mean(inside)), 4),
            "outside_moved_per_image": [round(x, 4) for x in outside]}


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def figure(rows: Sequence[tuple[str, Any, dict[str, Any]]], path: Path, tile: int = 256) -> Path:
    """One row per bundle: the label map (class outlined), the base image, the class redrawn
    with three seeds, and the largest change per pixel (x4), the class and its 16-px
    growth outlined."""
    from sdk.atomic import atomic_path
    from sdk.palettes import colorize, get_palette

    head, title_h, gap = 22, 22, 6
    cols = 2 + len(SEEDS) + 1
    canvas = Image.new("RGB", (cols * (tile + gap) + gap, len(rows) * (tile + title_h + head) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    for r, (title, s, figures) in enumerate(rows):
        label = block_map(s.bundle.resolution, s.bundle.num_classes, seed=0)
        h, w = label.shape
        cls = int(label[h // GRID + h // (2 * GRID), w // GRID + w // (2 * GRID)])
        base, images = redraw(s, label, cls)
        mask = label == cls
        grown = grow(mask, GROW)
        edge, ring = mask & grow(~mask, 1), grown & grow(~grown, 1)  # the outlines, drawn inside
        palette = s.bundle.label.get("palette") or get_palette(None, s.bundle.num_classes)
        lab = colorize(label, palette)
        lab[edge] = (255, 0, 0)
        change = np.max([np.abs(x - base).max(-1) for x in images], axis=0)
        heat = np.repeat(np.clip(change * 4, 0, 255).astype(np.uint8)[..., None], 3, -1)
        heat[ring] = (255, 210, 0)
        heat[edge] = (255, 0, 0)
        tiles = [lab, base, *images, heat]
        names = [f"label (class {cls} outlined)", f"seed {BASE} (base)",
                 *[f"class {cls}: seed {k}" for k in SEEDS], "max change x4 (+16 px ring)"]
        y = gap + r * (tile + title_h + head)
        draw.text((gap, y + 3), title + f": {figures['outside_moved']:.1%} of the pixels outside the grown class "
                  f"move > {LEVELS} levels, {figures['inside_moved']:.1%} inside ({figures['maps']} maps x "
                  f"{len(SEEDS)} seeds)", fill="black", font=font)
        for c, (arr, name) in enumerate(zip(tiles, names)):
            x = gap + c * (tile + gap)
            img = Image.fromarray(np.asarray(arr, dtype=np.uint8)).resize((tile, tile), Image.NEAREST)
            canvas.paste(img, (x, y + title_h + head))
            draw.text((x, y + title_h + 4), name, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def ci_bundle(name: str, root: Path) -> Path:
    """The preset's CI-size bundle (random weights), exported once into ``root``."""
    from sdk.export.bundle import build_bundle
    from sdk.export.label_lookup import MIN_CLASSES
    from sdk.train.models import get_preset

    out = root / name
    if not (out / "manifest.json").is_file():
        preset = get_preset(name)
        print(f"exporting {name} at CI size to {out}", flush=True)
        build_bundle(name, out, overrides=preset.test_overrides, seed=0,
                     label_lookup=getattr(preset.config, "num_classes", 0) >= MIN_CLASSES)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oasis", help="an OASIS bundle (default: oasis-ade20k at CI size, random weights)")
    ap.add_argument("--groupdnet", help="a GroupDNet bundle (default: groupdnet-deepfashion at CI size)")
    ap.add_argument("--maps", type=int, default=4, help="block label maps per bundle")
    ap.add_argument("--figure", default="docs/resample_locality.png", help="where to write the figure ('' for none)")
    ap.add_argument("--json", default="benchmarks/results/resample-locality/results.json")
    args = ap.parse_args(argv)

    from sdk import Synthesizer

    cache = ROOT / "benchmarks" / "results" / "resample-locality" / "bundles"
    rows, results = [], {}
    for family, preset in PRESETS.items():
        path = getattr(args, family) or ci_bundle(preset, cache)
        s = Synthesizer.from_pretrained(path, backend="onnxruntime", label_format="ids")
        figures = measure(s, args.maps)
        results[family] = figures
        weights = "random weights, CI size" if s.bundle.random_weights else figures["weights"]
        print(f"{family:<9} {s.bundle.name} ({weights}): outside the class grown by {GROW} px, "
              f"{figures['outside_moved']:.1%} of pixels move > {LEVELS} levels; inside {figures['inside_moved']:.1%}")
        rows.append((f"{'OASIS' if family == 'oasis' else 'GroupDNet'} {s.bundle.name} ({weights})", s, figures))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"grow_px": GROW, "levels": LEVELS, **results}, indent=1) + "\n")
    print(f"wrote {out}")
    if args.figure:
        print(f"wrote {figure(rows, Path(args.figure))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
