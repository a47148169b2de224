"""The held-out quality set: the maps every CPU engine is judged on, never calibrated on.

Three rows of maps, :data:`SEEDS_PER_ROW` seeds each, all seeds from
``export.calibration.QUALITY_SEED`` (calibration seeds start at 0) and, for two of the
rows, generators the calibration set does not use:

* ``blocks``: a grid of square blocks holding **every class** of the bundle (each map a
  fresh permutation of all classes over its blocks, the remaining blocks drawn at
  random): every label-reading layer is exercised on every class, next to every other;
* ``scenes``: procedural street-scene layouts (the structure of a real map), their
  regions recoloured from a held-out :class:`~export.calibration.ClassSchedule`
  (Cityscapes-id bundles keep the scenes' ids);
* ``noise``: a stress row, 2x2-pixel cells of random classes: as many class boundaries
  as a map can hold, ranges no real map reaches.

A graph without a label input (unconditional) gets one row, ``latents``: seeded inputs.
The engine's bar applies to the worst image over every row (``export.engine_cpu``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.bundle import Bundle
from sdk.export.calibration import (
    QUALITY_SEED,
    ClassSchedule,
    feeds_for,
    is_street_bundle,
    recolour,
    scene_layout,
    takes_label,
)

SEEDS_PER_ROW = 3
"""Maps per row (batch 1 each): 9 images for a labelled graph."""
ROWS = ("blocks", "scenes", "noise")
NOISE_CELL = 2
"""Pixels per side of a noise map's cells."""
MAX_BLOCK = 16
"""Largest block side of a block map (smaller where the map needs more blocks for every class)."""


@dataclass(frozen=True)
class HeldOutItem:
    """One input of the held-out set: its row, its name (``row-seed``) and its feeds."""

    row: str
    name: str
    feeds: dict[str, np.ndarray]
    ids: np.ndarray | None = None


def block_side(height: int, width: int, num_classes: int) -> int:
    """The largest power-of-two block side up to :data:`MAX_BLOCK` whose grid holds at least
    ``num_classes`` blocks (1 where even single pixels are too few)."""
    side = MAX_BLOCK
    while side > 1 and (-(-height // side)) * (-(-width // side)) < num_classes:
        side //= 2
    return side


def block_ids(height: int, width: int, num_classes: int, seed: int) -> np.ndarray:
    """(H, W) int32 block map with every class in it (module docstring)."""
    rng = np.random.default_rng(seed)
    side = block_side(height, width, num_classes)
    gh, gw = -(-height // side), -(-width // side)
    cells = gh * gw
    extra = rng.integers(0, num_classes, max(cells - num_classes, 0))
    grid = rng.permutation(np.concatenate([np.arange(num_classes), extra]))[:cells].reshape(gh, gw)
    return np.kron(grid, np.ones((side, side), np.int64))[:height, :width].astype(np.int32)


def noise_ids(height: int, width: int, num_classes: int, seed: int) -> np.ndarray:
    """(H, W) int32 map of :data:`NOISE_CELL`-pixel cells of random classes."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, num_classes, (-(-height // NOISE_CELL), -(-width // NOISE_CELL)))
    return np.kron(grid, np.ones((NOISE_CELL, NOISE_CELL), np.int64))[:height, :width].astype(np.int32)


def held_out_maps(height: int, width: int, num_classes: int, street_ids: bool = False,
                  seeds: int = SEEDS_PER_ROW) -> list[tuple[str, int, np.ndarray]]:
    """``(row, seed, ids)`` of the held-out label maps (module docstring)."""
    schedule = ClassSchedule(num_classes, np.random.default_rng(QUALITY_SEED))
    out = []
    for row in ROWS:
        for k in range(seeds):
            seed = QUALITY_SEED + k
            if row == "blocks":
                ids = block_ids(height, width, num_classes, seed)
            elif row == "scenes":
                layout = scene_layout(height, width, seed)
                ids = layout if street_ids else recolour(layout, schedule)
            else:
                ids = noise_ids(height, width, num_classes, seed)
            out.append((row, seed, ids))
    return out


def held_out_set(bundle: Bundle, graph: str = "model", seeds: int = SEEDS_PER_ROW) -> list[HeldOutItem]:
    """The held-out inputs of ``graph`` (batch 1 each), other inputs seeded per map."""
    if not takes_label(bundle, graph):
        return [HeldOutItem("latents", f"latents-{QUALITY_SEED + k}", feeds_for(bundle, graph, None, QUALITY_SEED + k))
                for k in range(seeds * len(ROWS))]
    h, w = bundle.resolution
    return [HeldOutItem(row, f"{row}-{seed}", feeds_for(bundle, graph, ids, seed), ids)
            for row, seed, ids in held_out_maps(h, w, int(bundle.num_classes), is_street_bundle(bundle), seeds)]


def describe(items: list[HeldOutItem]) -> str:
    """One line saying what the held-out set holds."""
    rows: dict[str, int] = {}
    for item in items:
        rows[item.row] = rows.get(item.row, 0) + 1
    parts = ", ".join(f"{n} {row}" for row, n in rows.items())
    return (f"held-out set: {parts} (seeds {QUALITY_SEED}..), batch 1; block maps hold every class; "
            f"no map is a calibration map")
