"""Inputs a bundle makes for itself: calibration sets (INT8) and seeded quality checks.

A label map for calibration should look like the maps the model will see: regions of a
few classes, not per-pixel noise (noise drives every label convolution to values no real
map produces, and the activation ranges calibrated on it waste most of the 8 bits).
Three sources, all in the bundle's class ids:

* ``procedural`` (default): for Cityscapes-id bundles (35 classes, the demo's palette) the
  procedural street scenes of ``train.data.procedural`` (numpy only); for every other
  bundle, region maps: a Voronoi partition of 6-24 cells over 3-12 classes drawn from
  the bundle's classes, at a quarter of the resolution and upsampled (nearest);
* ``samples``: the repository's ``samples/`` label PNGs of the bundle's dataset
  (``street_*`` for Cityscapes, ``ade_*``, ``coco_*``, ``fashion_*``);
* a folder of label PNGs: dataset files as the dataset ships them, mapped to model ids by
  the bundle's convention (``sdk.conventions``), or RGB in the bundle's palette; resized to
  the bundle's resolution (nearest).

The other inputs are made as the Synthesizer makes them: instance edges from the label
map's own class boundaries, latents / per-class codes from a seeded normal (unit-sphere
latents normalised), images as smooth random RGB. Numpy only (no torch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sdk.bundle import Bundle
from sdk.errors import SDKError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CALIBRATION_SIZE = 16
"""Label maps in a calibration set by default (more barely moved the measured PSNR)."""
QUALITY_SEED = 10_000
"""Seeds of the quality inputs start here: never the calibration set's (0..)."""


class CalibrationError(SDKError):
    """A calibration source the bundle cannot use (missing folder, no label maps in it)."""


def region_ids(height: int, width: int, num_classes: int, seed: int) -> np.ndarray:
    """An (H, W) int32 map of Voronoi regions over a few classes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(num_classes, size=min(num_classes, int(rng.integers(3, 13))), replace=False)
    cells = int(rng.integers(6, 25))
    h, w = -(-height // 4), -(-width // 4)
    cy, cx = rng.uniform(0, h, cells), rng.uniform(0, w, cells)
    yy, xx = np.mgrid[0:h, 0:w]
    nearest = np.argmin((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2, axis=0)
    coarse = classes[rng.integers(0, len(classes), cells)][nearest]
    return np.kron(coarse, np.ones((4, 4), dtype=np.int64))[:height, :width].astype(np.int32)


def procedural_ids(bundle: Bundle, seed: int) -> np.ndarray:
    """One procedural label map of the bundle's size and classes (module docstring)."""
    h, w = bundle.resolution
    classes = int(bundle.num_classes)
    if classes == 35:  # Cityscapes ids: the street scenes the demo was trained on
        from sdk.train.data.procedural import scene_label

        return scene_label(seed, h, w).astype(np.int32)
    return region_ids(h, w, classes, seed)


SAMPLE_PREFIXES = {"Cityscapes": "street", "ADE20K": "ade", "COCO-Stuff": "coco", "DeepFashion": "fashion"}
"""Dataset (``manifest.label.convention.dataset``) -> file prefix of its maps in ``samples/``."""


def file_ids(bundle: Bundle, path: Path) -> np.ndarray:
    """One label PNG as model class ids at the bundle's resolution: a dataset file through the
    bundle's convention, an RGB map through its palette, read by the bundle's intake (the one
    reader of label maps: resized, or refused, as the Synthesizer reads files)."""
    from sdk.intake import LabelIntake

    return LabelIntake(bundle).read(path, what=str(path), regions_as_edges=True).ids


def folder_ids(bundle: Bundle, folder: str | Path, pattern: str = "*label*.png") -> list[np.ndarray]:
    """Every label PNG of ``folder`` (``pattern`` if any match, else ``*.png``) as model class
    ids at the bundle's resolution (:func:`file_ids`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder {folder} does not exist; give a folder of label PNGs, "
                               f"'samples' or 'procedural'")
    files = sorted(folder.glob(pattern)) or sorted(folder.glob("*.png"))
    if not files:
        raise CalibrationError(f"calibration folder {folder} has no PNG label maps; give a folder of label "
                               f"PNGs (index, grayscale or RGB in the model's palette)")
    return [file_ids(bundle, f) for f in files]


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
        return [procedural_ids(bundle, seed + i) for i in range(count)]
    maps = sample_ids(bundle) if source == "samples" else folder_ids(bundle, source)
    return [maps[i % len(maps)] if (i // len(maps)) % 2 == 0 else maps[i % len(maps)][:, ::-1].copy()
            for i in range(count)]


def _smooth_image(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) float32 in [-1, 1]: coarse noise upsampled, an image's low frequencies."""
    _, h, w = shape
    coarse = rng.uniform(-1, 1, (3, max(h // 8, 1), max(w // 8, 1))).astype(np.float32)
    return np.kron(coarse, np.ones((1, 8, 8), np.float32))[:, :h, :w]


def feeds_for(bundle: Bundle, graph: str, ids: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """Batch-1 feeds of ``graph`` for the label map ``ids`` (None: no label input), the other
    inputs seeded by ``seed`` (module docstring)."""
    from sdk.labels import instance_edges

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in bundle.graph(graph)["inputs"]:
        shape = tuple(1 if d is None else int(d) for d in spec["shape"])
        kind, name = spec["kind"], spec["name"]
        if kind == "label":
            feeds[name] = ids[None].astype(spec["dtype"])
        elif kind == "instance_edge":
            feeds[name] = instance_edges(ids[None])
        elif kind == "image":
            feeds[name] = _smooth_image(shape[1:], rng)[None]
        else:  # latents, per-class codes, style statistics
            z = rng.standard_normal(shape, dtype=np.float32)
            if spec.get("attrs", {}).get("distribution") == "sphere":
                z /= np.linalg.norm(z, axis=-1, keepdims=True)
            feeds[name] = z
    return feeds


def input_set(bundle: Bundle, graph: str, source: str | Path, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` batch-1 feed dicts of ``graph``: label maps from ``source`` (if the graph
    takes a label), other inputs seeded per item."""
    takes_label = any(s["kind"] == "label" for s in bundle.graph(graph)["inputs"])
    maps: list[np.ndarray | None] = (label_maps(bundle, source, count, seed) if takes_label
                                     else [None] * count)
    for i, ids in enumerate(maps):
        yield feeds_for(bundle, graph, ids, seed + i)
