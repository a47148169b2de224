"""Edits of a label map, as a painter makes them: a brush stroke, a region relabel.

Both paint a target fraction of the map's pixels with one class (seeded, deterministic):

* :func:`brush_stroke`: a round brush (diameter ~1/20 of the map's shorter side) dragged
  along a smooth random path, reflected at the borders, until it has covered the target;
* :func:`region_relabel`: the region under a random pixel (its 4-connected same-class
  component) takes a new class, grown from that pixel in breadth-first order up to the
  target; a region smaller than the target grows on into its neighbours (a fill of a
  compact blob).

The painted class is one the map does not hold where it can be, so the painted pixels are
the changed ones; :func:`changed_fraction` is what an edit changed in fact.
:func:`block_map` is the synthetic map (uniform blocks, each a random class) the benchmarks
use beside the samples.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from PIL import Image, ImageDraw

FRACTIONS = (0.005, 0.02, 0.05, 0.20)
"""Edit sizes of the benchmark, as fractions of the map's pixels (0.5%, 2%, 5%, 20%)."""
KINDS = ("stroke", "region")


def block_map(size: tuple[int, int], classes: int, seed: int, grid: int = 8) -> np.ndarray:
    """A ``grid`` x ``grid`` map of uniform blocks, each a random class (int32, seeded)."""
    h, w = size
    coarse = np.random.default_rng(seed).integers(0, classes, (grid, grid))
    return coarse[(np.arange(h) * grid) // h][:, (np.arange(w) * grid) // w].astype(np.int32)


def paint_class(ids: np.ndarray, classes: int, rng: np.random.Generator) -> int:
    """A class absent from ``ids`` (a random one), or, when all are present, the rarest."""
    counts = np.bincount(ids.ravel(), minlength=classes)
    absent = np.flatnonzero(counts == 0)
    return int(rng.choice(absent)) if absent.size else int(np.argmin(counts))


def brush_stroke(ids: np.ndarray, fraction: float, classes: int, seed: int = 0) -> np.ndarray:
    """``ids`` with a brush stroke covering ``fraction`` of its pixels in one class."""
    rng = np.random.default_rng(seed)
    h, w = ids.shape
    radius = max(1, round(min(h, w) / 40))
    target = fraction * h * w
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    x, y = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    heading = rng.uniform(0, 2 * np.pi)
    painted = 0
    for _ in range(100_000):
        heading += rng.normal(0.0, 0.35)
        nx, ny = x + radius * np.cos(heading), y + radius * np.sin(heading)
        if not (0 <= nx < w):  # reflect at the borders
            heading = np.pi - heading
            nx = x + radius * np.cos(heading)
        if not (0 <= ny < h):
            heading = -heading
            ny = y + radius * np.sin(heading)
        draw.line([(x, y), (nx, ny)], fill=255, width=2 * radius + 1, joint="curve")
        draw.ellipse([nx - radius, ny - radius, nx + radius, ny + radius], fill=255)
        x, y = nx, ny
        painted = int(np.count_nonzero(np.asarray(mask)))
        if painted >= target:
            break
    out = ids.copy()
    out[np.asarray(mask) > 0] = paint_class(ids, classes, rng)
    return out


def region_relabel(ids: np.ndarray, fraction: float, classes: int, seed: int = 0) -> np.ndarray:
    """``ids`` with ``fraction`` of its pixels, the region under a random pixel first, relabelled."""
    rng = np.random.default_rng(seed)
    h, w = ids.shape
    target = max(1, round(fraction * h * w))
    seen = np.zeros((h, w), bool)
    y0, x0 = int(rng.integers(h)), int(rng.integers(w))
    own = ids == ids[y0, x0]
    taken: list[tuple[int, int]] = []
    spill: list[tuple[int, int]] = []  # neighbours outside the region, for a region too small
    queue = deque([(y0, x0)])
    seen[y0, x0] = True
    for region_only in (True, False):
        if not region_only:
            queue = deque(spill)
        while queue and len(taken) < target:
            y, x = queue.popleft()
            taken.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx]:
                    seen[ny, nx] = True
                    (queue if (own[ny, nx] or not region_only) else spill).append((ny, nx))
    out = ids.copy()
    rows, cols = np.array(taken).T
    out[rows, cols] = paint_class(ids, classes, rng)
    return out


def make_edit(kind: str, ids: np.ndarray, fraction: float, classes: int, seed: int = 0) -> np.ndarray:
    """The ``kind`` edit (``"stroke"`` or ``"region"``) of ``fraction`` of ``ids``."""
    if kind == "stroke":
        return brush_stroke(ids, fraction, classes, seed)
    if kind == "region":
        return region_relabel(ids, fraction, classes, seed)
    raise ValueError(f"unknown edit {kind!r}; use one of {KINDS}")


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a != b))


__all__ = ["FRACTIONS", "KINDS", "block_map", "brush_stroke", "changed_fraction", "make_edit",
           "paint_class", "region_relabel"]
