"""The one intake of label maps: whatever a door receives -> the model's int32 ids and uint8 edges.

Every door (the Python API, the CLI, ``sdk batch``, ``sdk serve``, the app) hands what it
received to :meth:`LabelIntake.read` -- a path, the bytes of a PNG, a PIL image, an (H, W)
array -- with an optional instance map, or (the app) a painted canvas of model ids to
:meth:`LabelIntake.read_canvas`, and gets back a :class:`Label`, or one
:class:`~sdk.errors.LabelError` line that names the problem and the fix: the same line at
every door. In order:

1. **Bounds before work** (:func:`sdk.labels.open_image`): a file's dimensions come from its
   header, before any pixel is decoded; more than :data:`sdk.labels.MAX_PIXELS` is refused
   with the limit in the message. Lossy formats (JPEG) are refused: compression moves ids
   along region borders. A folder, a missing or an unreadable file is named as such.
2. **Decode at the file's own depth** (8- or 16-bit grey, palette indices, or RGB in the
   model's palette) and **resize there** (nearest: the pixels the official test code's PIL
   NEAREST picks) when the map is not at the model's size, with one notice. Memory follows
   the file's own bytes per pixel; no full-size int64 copy is ever made.
3. **Map to model ids once**: dataset file values through the bundle's convention
   (:mod:`sdk.conventions`), or model ids as they are (``label_format="ids"``, the app's canvas,
   colours of the model's palette); range-checked; one int32 array, which the Synthesizer
   hands to the runner as it is (stacked, for a batch).
4. **Edges**: a model trained with instance edges gets them from the instance map (read by
   the same rules; its numbering never matters) or, without one, from the borders of the
   label's own regions, which it says once per process.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from .bundle import Bundle
from .conventions import Convention, check_label_format
from .deprecation import deprecated
from .errors import LabelError
from .labels import LabelLike, MapSource, check_ids, check_size, colours_to_ids, instance_edges, pack_colours
from .notices import notice

ASPECT_TOLERANCE = 0.01
"""Relative aspect-ratio difference up to which a map is resized rather than refused."""
CANVAS_PREFIX = "data:image/png;base64,"
"""What the app's canvas sends: a PNG data URL whose red channel holds model ids."""


@dataclass(frozen=True, eq=False)
class Label:
    """A label map read for one model, ready for its runner.

    ``ids``: (H, W) int32 model class ids at the model's resolution. ``edges``: (H, W) uint8
    instance edges (0/1) for a model trained with them, else None. ``edges_from``: where the
    edges came from: ``"instance map"``, ``"label regions"`` or ``""`` (none).
    """

    ids: np.ndarray
    edges: np.ndarray | None = None
    edges_from: str = ""


class LabelIntake:
    """How one bundle reads label maps; every door reads through one of these.

    ``label_format``: ``"dataset"`` (default) reads maps as the dataset's annotation files,
    mapped through the bundle's convention; ``"ids"`` takes them as model class ids already.
    RGB maps in the model's palette hold model ids either way. (``labels=``, and its value
    ``"model"``, are the old names: deprecated.)
    """

    def __init__(self, bundle: Bundle, label_format: str = "dataset", *, labels: str | None = None) -> None:
        self.bundle = bundle
        self.label_format = check_label_format(label_format, labels)
        spec = dict(bundle.label.get("convention") or {})
        spec.pop("source", None)  # where the convention was chosen from, not a field of it
        self.convention = Convention.from_json(spec) if spec else None
        self.size = bundle.resolution
        self.num_classes = int(bundle.num_classes or 0)
        self.palette = bundle.label.get("palette")
        self.wants_edges = bool(bundle.label.get("instance_edge"))

    @property
    def labels(self) -> str:
        """Deprecated: :attr:`label_format` (this gives the old values, ``"model"`` for ``"ids"``)."""
        deprecated("LabelIntake.labels is deprecated: use .label_format ('dataset' or 'ids')")
        return "model" if self.label_format == "ids" else self.label_format

    def read(self, label: LabelLike | Label, instance: LabelLike | None = None, *, label_format: str | None = None,
             what: str = "label", regions_as_edges: bool = False, labels: str | None = None) -> Label:
        """One label map (and its instance map) as this model's :class:`Label`: the one
        reader of label maps, at every door.

        ``label_format`` overrides the intake's for this map (``labels``: its old name). A
        label and its instance map are of one size and resized alike. ``regions_as_edges``:
        without an instance map, take the label regions' borders as edges without the notice
        (the caller says so itself).
        A :class:`Label` passes through as it is: it was read already.
        """
        if isinstance(label, Label):
            if instance is not None:
                raise LabelError(f"{what} was read already (a Label); give its instance map when reading it")
            return label
        fmt = self.label_format if label_format is None and labels is None else \
            check_label_format(label_format or "dataset", labels)
        dataset = fmt == "dataset" and self.convention is not None
        src = MapSource(label, what)
        inst = None
        if instance is not None:
            self.check_takes_instances()
            inst = MapSource(instance, "instance map")
            if inst.shape != src.shape:
                raise LabelError(f"instance map is {inst.shape[0]}x{inst.shape[1]} but the label map is "
                                 f"{src.shape[0]}x{src.shape[1]}; give maps of the same size")
        size = self._target(src.shape, what, dataset)
        ids = self._ids(src.values(size), src.coloured, dataset and not src.coloured, what)
        if inst is not None:
            return Label(ids, self._edges(inst.values(size)), "instance map")
        return self._region_edges(ids, quiet=regions_as_edges)

    def read_canvas(self, value: str | bytes, edges: np.ndarray | None = None, *,
                    what: str = "painted label") -> Label:
        """The app's painted canvas: a PNG (data URL or bytes) whose red channel holds model
        ids, at the model's size. ``edges``: instance edges to use (:meth:`instance_edges`);
        without them the painted regions' borders, without a notice (the page says so)."""
        src = MapSource(_canvas_bytes(value, what), what)
        values = src.values(self._target(src.shape, what, dataset=False))
        ids = self._ids(values[..., 0] if values.ndim == 3 else values, False, False, what)
        if edges is not None and self.wants_edges:
            return Label(ids, edges, "instance map")
        return self._region_edges(ids, quiet=True)

    def instance_edges(self, instance: LabelLike, what: str = "instance map") -> np.ndarray:
        """One instance map alone -> (H, W) uint8 edges at the model's size (resized by the
        label rules first, as the official code resizes it)."""
        self.check_takes_instances()
        src = MapSource(instance, what)
        dataset = self.label_format == "dataset" and self.convention is not None
        return self._edges(src.values(self._target(src.shape, what, dataset)))

    # -- steps --------------------------------------------------------------------------
    def check_takes_instances(self) -> None:
        """Refuse an instance map for a model trained without instance edges (one line)."""
        if not self.wants_edges:
            raise LabelError(f"{self.bundle.name} takes no instance map (it was trained without instance edges); "
                             f"leave the instance map out")

    def _target(self, shape: tuple[int, int], what: str, dataset: bool) -> tuple[int, int] | None:
        """None for a map at the model's size; the model's size for one of its aspect ratio
        (or of any, where the dataset's official code squashes: ADE20K, COCO-Stuff), with
        one notice; else the size error."""
        h, w = self.size
        h_in, w_in = shape
        if (h_in, w_in) == (h, w):
            return None
        same_aspect = abs((w_in / h_in) / (w / h) - 1) <= ASPECT_TOLERANCE
        if not (same_aspect or (dataset and self.convention.resize == "any")):
            check_size(shape, (h, w), what)  # raises, naming the sizes and the fix
        notice(f"{what} is {h_in}x{w_in}: resized (nearest, as the official test code) to the model's "
               f"{h}x{w}" + ("" if same_aspect else ", squashing its aspect ratio as the official code does"))
        return (h, w)

    def _ids(self, values: np.ndarray, coloured: bool, dataset: bool, what: str) -> np.ndarray:
        """Values at the model's size -> checked int32 model ids: the one int32 array."""
        if coloured:
            ids = colours_to_ids(values, self.palette, what)
            check_ids(ids, self.num_classes, what)
            return ids
        if dataset:
            return self.convention.to_ids(values, what)
        check_ids(values, self.num_classes, what)
        return values.astype(np.int32)

    @staticmethod
    def _edges(values: np.ndarray) -> np.ndarray:
        if values.ndim == 3:  # a colour-coded instance map: one colour per instance
            values = pack_colours(values)
        return instance_edges(values[None])[0]

    def _region_edges(self, ids: np.ndarray, quiet: bool) -> Label:
        if not self.wants_edges:
            return Label(ids)
        if not quiet:
            notice(f"{self.bundle.name} was trained with instance edges and got no instance map: the borders of "
                   f"the label's regions stand in for them (give one: instance= in Python, --instance on the CLI, "
                   f"--instances for sdk batch, the 'instance' field of sdk serve)")
        return Label(ids, instance_edges(ids[None])[0], "label regions")


def _canvas_bytes(value: str | bytes, what: str) -> bytes:
    """The PNG bytes of a canvas value (a ``data:image/png;base64,`` URL, or bytes)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str) or not value.startswith(CANVAS_PREFIX):
        raise LabelError(f"the {what} is not a PNG data URL; paint again")
    try:
        return base64.b64decode(value[len(CANVAS_PREFIX):], validate=True)
    except ValueError:
        raise LabelError(f"the {what} is not valid base64; paint again") from None


__all__ = ["ASPECT_TOLERANCE", "CANVAS_PREFIX", "Label", "LabelIntake"]
