"""Inputs a bundle makes for itself: INT8 calibration sets that cover every class.

A label map for calibration should look like the maps the model will see: regions, not
per-pixel noise (noise drives every label convolution to values no real map produces,
and ranges calibrated on it waste most of the 8 bits). And the set must **cover the
label space**: a class the calibration never shows leaves the activation ranges of the
layers that read it calibrated on nothing (issue 25: 16 maps of 3-12 random classes saw
about half of ADE20K's 151 classes, and INT8 fell to 30 dB on maps using all of them).

Sources, all in the bundle's class ids:

* ``procedural`` (default): a **balanced schedule** (:class:`ClassSchedule`: classes
  handed out round-robin from a shuffled list, so the first ``C`` draws are every class
  once) feeds two kinds of maps, alternating:

  - *scene layouts*: the procedural street scenes of ``train.data.procedural`` (the
    structure of a real layout: sky, skyline, road in perspective, cars, poles), each of
    their regions given the next class of the schedule; a Cityscapes-id bundle (35
    classes) keeps the scenes' own ids (they are real Cityscapes layouts);
  - *clutter maps*: a Voronoi partition whose every cell holds the next class of the
    schedule, with as many cells as it takes for the set to draw every class
    (:func:`clutter_ids`; cells never vanish: each holds its own seed pixel).

  So every class of the bundle appears in the default set whenever its pixels allow
  (:func:`coverage` checks it, and the engine record lists what was seen);
* ``samples``: the repository's ``samples/`` label PNGs of the bundle's dataset;
* a folder of label PNGs: the user's own maps, read through the bundle's one intake
  (``sdk.intake.LabelIntake``: its dataset convention, palette, size rules), as every
  door reads them.

Seeds: calibration sets start at 0; the held-out quality set (``export.quality_set``)
uses other generators and seeds from :data:`QUALITY_SEED`, so no map is shared.

The other inputs are made as the Synthesizer makes them: instance edges from the label
map's own class boundaries, latents / per-class codes from a seeded normal (unit-sphere
latents normalised), images as smooth random RGB. Numpy only (no torch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from sdk.bundle import Bundle
from sdk.errors import SDKError
from sdk.manifest import Kind

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CALIBRATION_SIZE = 16
"""Label maps in a calibration set by default."""
QUALITY_SEED = 10_000
"""Seeds of the held-out quality inputs start here: never the calibration set's (0..)."""
CITYSCAPES_CLASSES = 35
"""Bundles with this many classes read Cityscapes ids: the procedural scenes' own ids."""
MIN_CELLS = 6
"""Fewest Voronoi cells of a clutter map (more where the set must cover many classes)."""


class CalibrationError(SDKError):
    """A calibration source the bundle cannot use (missing folder, no label maps in it)."""


class ClassSchedule:
    """Class ids handed out round-robin from a shuffled list, reshuffled after each full
    cycle: any ``num_classes`` consecutive draws from the start hold every class once."""

    def __init__(self, num_classes: int, rng: np.random.Generator) -> None:
        self.num_classes = num_classes
        self._rng = rng
        self._cycle = rng.permutation(num_classes)
        self._pos = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` class ids (int64)."""
        out = []
        for _ in range(k):
            if self._pos == self.num_classes:
                self._cycle, self._pos = self._rng.permutation(self.num_classes), 0
            out.append(self._cycle[self._pos])
            self._pos += 1
        return np.asarray(out, dtype=np.int64)


def _coarse_factor(height: int, width: int, cells: int) -> int:
    """Downscale of a cell grid: 4 (regions larger than a pixel block) where the map has room
    for ``cells`` cells of several coarse pixels, else 2, else 1."""
    for f in (4, 2):
        if (-(-height // f)) * (-(-width // f)) >= 4 * cells:
            return f
    return 1


def voronoi_ids(height: int, width: int, cell_classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) int32: a Voronoi partition with one cell per entry of ``cell_classes`` (the
    cell's class). Seed points sit on distinct pixels of the coarse grid, so no cell is
    empty while the grid has pixels for them all."""
    f = _coarse_factor(height, width, len(cell_classes))
    h, w = -(-height // f), -(-width // f)
    cells = min(len(cell_classes), h * w)
    flat = rng.choice(h * w, size=cells, replace=False)
    cy, cx = (flat // w).astype(np.float64), (flat % w).astype(np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    nearest = np.empty((h, w), np.int64)
    best = np.full((h, w), np.inf)
    for i in range(cells):  # one cell at a time: memory stays (H, W) for hundreds of cells
        d = (yy - cy[i]) ** 2 + (xx - cx[i]) ** 2
        closer = d < best
        nearest[closer], best[closer] = i, d[closer]
    coarse = np.asarray(cell_classes[:cells])[nearest]
    return np.kron(coarse, np.ones((f, f), dtype=np.int64))[:height, :width].astype(np.int32)


def clutter_ids(height: int, width: int, schedule: ClassSchedule, cells: int,
                rng: np.random.Generator) -> np.ndarray:
    """A clutter map: ``cells`` Voronoi cells, each the schedule's next class."""
    return voronoi_ids(height, width, schedule.take(cells), rng)


def scene_layout(height: int, width: int, seed: int) -> np.ndarray:
    """A procedural street scene's label map (``train.data.procedural.scene_label``), int32."""
    from sdk.train.data.procedural import scene_label

    return scene_label(seed, height, width).astype(np.int32)


def recolour(layout: np.ndarray, schedule: ClassSchedule) -> np.ndarray:
    """``layout`` with each of its regions' classes (one per distinct value) replaced by the
    schedule's next class."""
    values = np.unique(layout)
    table = np.zeros(int(values.max()) + 1, np.int32)
    table[values] = schedule.take(len(values))
    return table[layout]


def balanced_maps(height: int, width: int, num_classes: int, count: int, seed: int = 0,
                  street_ids: bool = False) -> list[np.ndarray]:
    """``count`` calibration maps alternating scene layouts and clutter maps, their classes
    drawn from one :class:`ClassSchedule` so the set holds every class (module docstring).
    ``street_ids``: scenes keep their Cityscapes ids (a 35-class Cityscapes bundle)."""
    rng = np.random.default_rng(seed)
    schedule = ClassSchedule(num_classes, rng)
    layouts = {i: scene_layout(height, width, seed + i) for i in range(count) if i % 2 == 0 and count > 1}
    n_clutter = count - len(layouts)
    # every region of a recoloured scene draws one class; the clutter maps share what is left,
    # so the set draws at least C classes: the schedule's first C draws are every class
    scene_draws = 0 if street_ids else sum(len(np.unique(v)) for v in layouts.values())
    per_map = -(-max(num_classes - scene_draws, 0) // max(n_clutter, 1))
    maps = []
    for i in range(count):
        if i in layouts:
            maps.append(layouts[i] if street_ids else recolour(layouts[i], schedule))
        else:
            cells = max(MIN_CELLS, per_map) + int(rng.integers(0, 6))
            maps.append(clutter_ids(height, width, schedule, cells, rng))
    return maps


def coverage(maps: Sequence[np.ndarray], num_classes: int) -> dict[str, Any]:
    """Which of ``num_classes`` classes the maps hold: ``{"classes", "seen", "missing"}``."""
    seen = np.zeros(num_classes, bool)
    for ids in maps:
        seen[np.unique(ids)] = True
    return {"classes": num_classes, "seen": int(seen.sum()), "missing": [int(c) for c in np.flatnonzero(~seen)]}


def is_street_bundle(bundle: Bundle) -> bool:
    """A bundle that reads Cityscapes ids (its procedural maps keep the street scenes' ids)."""
    return int(bundle.num_classes) == CITYSCAPES_CLASSES


def procedural_maps(bundle: Bundle, count: int, seed: int = 0) -> list[np.ndarray]:
    """The default calibration set of the bundle (:func:`balanced_maps` at its size)."""
    h, w = bundle.resolution
    return balanced_maps(h, w, int(bundle.num_classes), count, seed, street_ids=is_street_bundle(bundle))


SAMPLE_PREFIXES = {"Cityscapes": "street", "ADE20K": "ade", "COCO-Stuff": "coco", "DeepFashion": "fashion"}
"""Dataset (``manifest.label.convention.dataset``) -> file prefix of its maps in ``samples/``."""


def folder_ids(bundle: Bundle, folder: str | Path, pattern: str = "*label*.png") -> list[np.ndarray]:
    """Every label PNG of ``folder`` (``pattern`` if any match, else ``*.png``) as model class
    ids at the bundle's resolution, read through the bundle's intake as every door reads."""
    from sdk.intake import LabelIntake

    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder {folder} does not exist; give a folder of label PNGs, "
                               f"'samples' or 'procedural'")
    files = sorted(folder.glob(pattern)) or sorted(folder.glob("*.png"))
    if not files:
        raise CalibrationError(f"calibration folder {folder} has no PNG label maps; give a folder of label "
                               f"PNGs (index, grayscale or RGB in the model's palette)")
    intake = LabelIntake(bundle)
    # edges are made from the ids by feeds_for; the label's own regions, without the notice
    return [intake.read(f, what=str(f), regions_as_edges=True).ids for f in files]


def sample_ids(bundle: Bundle) -> list[np.ndarray]:
    """The ``samples/`` label maps of the bundle's dataset."""
    dataset = (bundle.label.get("convention") or {}).get("dataset")
    prefix = SAMPLE_PREFIXES.get(dataset or "")
    if prefix is None or not sorted(SAMPLES.glob(f"{prefix}_*label*.png")):
        raise CalibrationError(f"samples/ has no label maps of {bundle.name}'s dataset "
                               f"({dataset or 'none recorded'}); calibrate on 'procedural' maps or give a folder "
                               f"of its label PNGs")
    return folder_ids(bundle, SAMPLES, f"{prefix}_*label*.png")


def label_maps(bundle: Bundle, source: str | Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` label maps from ``source`` (``procedural``, ``samples`` or a folder; a folder
    with fewer maps is cycled, each repeat flipped left-right, which real scenes allow)."""
    if source == "procedural":
        return procedural_maps(bundle, count, seed)
    maps = sample_ids(bundle) if source == "samples" else folder_ids(bundle, source)
    return [maps[i % len(maps)] if (i // len(maps)) % 2 == 0 else maps[i % len(maps)][:, ::-1].copy()
            for i in range(count)]


def _smooth_image(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) float32 in [-1, 1]: coarse noise upsampled, an image's low frequencies."""
    _, h, w = shape
    coarse = rng.uniform(-1, 1, (3, max(h // 8, 1), max(w // 8, 1))).astype(np.float32)
    return np.kron(coarse, np.ones((1, 8, 8), np.float32))[:, :h, :w]


def takes_label(bundle: Bundle, graph: str = "model") -> bool:
    return bundle.graph(graph).takes(Kind.LABEL)


def feeds_for(bundle: Bundle, graph: str, ids: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """Batch-1 feeds of ``graph`` for the label map ``ids`` (None: no label input), the other
    inputs seeded by ``seed`` (module docstring)."""
    from sdk.labels import instance_edges

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in bundle.graph(graph).inputs:
        shape = spec.batch_shape(1)
        kind, name = spec.kind, spec.name
        if kind == Kind.LABEL:
            feeds[name] = ids[None].astype(spec.dtype)
        elif kind == Kind.INSTANCE_EDGE:
            feeds[name] = instance_edges(ids[None])
        elif kind == Kind.IMAGE:
            feeds[name] = _smooth_image(shape[1:], rng)[None]
        else:  # latents, per-class codes, style statistics
            z = rng.standard_normal(shape, dtype=np.float32)
            if spec.attrs.get("distribution") == "sphere":
                z /= np.linalg.norm(z, axis=-1, keepdims=True)
            feeds[name] = z
    return feeds


def calibration_set(bundle: Bundle, source: str | Path, count: int,
                    seed: int = 0) -> tuple[list[dict[str, np.ndarray]], dict[str, Any] | None]:
    """``count`` batch-1 feed dicts of the synthesis graph for calibration, and the class
    coverage of their label maps (None when the graph takes no label)."""
    if not takes_label(bundle):
        return [feeds_for(bundle, "model", None, seed + i) for i in range(count)], None
    maps = label_maps(bundle, source, count, seed)
    return ([feeds_for(bundle, "model", ids, seed + i) for i, ids in enumerate(maps)],
            coverage(maps, int(bundle.num_classes)))


def input_set(bundle: Bundle, graph: str, source: str | Path, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` batch-1 feed dicts of ``graph``: label maps from ``source`` (if the graph
    takes a label), other inputs seeded per item."""
    maps: list[np.ndarray | None] = (label_maps(bundle, source, count, seed) if takes_label(bundle, graph)
                                     else [None] * count)
    for i, ids in enumerate(maps):
        yield feeds_for(bundle, graph, ids, seed + i)
