"""Label-map files and arrays: opening with bounds, decoding at the file's own depth,
nearest resizing, checks, and SPADE's instance edges.

The pieces :mod:`sdk.intake` is built from, in numpy: what the graphs must not contain
happens here. To read a label map, use the intake (``s.intake.read(x)``, or
``LabelIntake(bundle).read(x)``): the one reader, at every door; :class:`MapSource` gives a
file's raw values where no model is involved. The one-hot encoding is the graph's own
business (on its device): the host sends class ids (int32), never a float one-hot.
"""
from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image

from .deprecation import deprecated
from .errors import LabelError

LabelLike = Union[str, Path, bytes, Image.Image, np.ndarray]
"""A label map as users give it: a path, the bytes of a PNG, a PIL image or an (H, W) array."""
MAX_PIXELS = 1 << 25
"""Largest label, instance or style map read, in pixels (33,554,432: e.g. 4096x8192;
Cityscapes files have 2,097,152). Checked from the file's header, so a small file that
claims huge dimensions costs nothing; at the limit a 16-bit map decodes to 64 MiB."""
LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000")
"""Image formats refused for label and instance maps (PIL's names)."""
VALUE_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L", "1")
"""PIL modes whose pixels are the map's values (palette indices, 8- or 16-bit grey)."""
COLOUR_MODES = ("RGB", "RGBA")
"""PIL modes read as colours of the model's palette."""


def is_batch(label: object) -> bool:
    """Whether a label argument is several maps: a list or tuple, or an (N, H, W) array."""
    return isinstance(label, (list, tuple)) or (isinstance(label, np.ndarray) and label.ndim == 3)


# -- opening: bounds before work --------------------------------------------------------------
def open_image(x: Any, what: str = "label", *, lossless: bool = True) -> Image.Image | np.ndarray:
    """A path, image-file bytes or PIL image as a PIL image whose header has been read and
    checked (at most :data:`MAX_PIXELS`; lossy formats refused when ``lossless``), its pixels
    not decoded yet; an array as it is. Anything else is a one-line :class:`LabelError`."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, Image.Image):
        img = x
    elif isinstance(x, (bytes, bytearray, memoryview)):
        if not len(x):
            raise LabelError(f"the {what} is empty (0 bytes); send a PNG file")
        img = _open_file(io.BytesIO(bytes(x)), f"the {what}")
    elif isinstance(x, (str, Path)):
        path = Path(x)
        if path.is_dir():
            raise LabelError(f"{what} {path} is a folder, not an image file; give one PNG "
                             f"(sdk batch takes a folder of them)")
        if not path.is_file():
            raise LabelError(f"{what} file {path} does not exist")
        img = _open_file(path, f"{what} {path}")
    else:
        raise LabelError(f"{what} must be a PNG path, PNG bytes, a PIL image or a numpy array, "
                         f"not {type(x).__name__}")
    w, h = img.size
    check_pixels(h, w, what)
    if lossless and img.format in LOSSY_FORMATS:
        raise LabelError(f"{what} is a {img.format} file: lossy compression changes class ids along region "
                         f"borders; give the map as a PNG (lossless)")
    return img


def _open_file(fp: Any, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():  # the size is ours to judge, from the header
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError:
        raise LabelError(f"{name} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; maps up to "
                         f"{MAX_PIXELS:,} pixels (e.g. 4096x8192) are read: downscale it (nearest) first") from None
    except Exception as exc:
        raise LabelError(f"cannot read {name} as an image ({type(exc).__name__}); give a PNG") from None


def check_pixels(h: int, w: int, what: str = "label") -> None:
    """Refuse a map of more than :data:`MAX_PIXELS` pixels (or of none), naming the limit."""
    if h * w > MAX_PIXELS:
        raise LabelError(f"{what} is {h}x{w} (HxW), {h * w:,} pixels; maps up to {MAX_PIXELS:,} pixels "
                         f"(e.g. 4096x8192) are read: downscale it (nearest) first")
    if h * w == 0:
        raise LabelError(f"{what} is empty ({h}x{w}); give an (H, W) map of class ids")


class MapSource:
    """One opened map: its (H, W), known before decoding, and its values at a given size."""

    def __init__(self, x: Any, what: str = "label") -> None:
        self.what = what
        self.obj = open_image(x, what)
        if isinstance(self.obj, np.ndarray):
            arr = self.obj
            if arr.size == 0:
                raise LabelError(f"{what} is empty (shape {arr.shape}); give an (H, W) map of class ids")
            if arr.ndim != 2:
                raise LabelError(f"{what} has shape {arr.shape}; give one (H, W) map of class ids "
                                 f"(a list of maps for a batch)")
            check_pixels(*arr.shape, what)
            self.shape = (int(arr.shape[0]), int(arr.shape[1]))
            self.coloured = False
        else:
            mode = self.obj.mode
            if mode not in VALUE_MODES + COLOUR_MODES:
                raise LabelError(f"{what} image has mode {mode}; give an index (P), grayscale (L, 16-bit) "
                                 f"or RGB PNG")
            self.shape = (self.obj.size[1], self.obj.size[0])
            self.coloured = mode in COLOUR_MODES
            """RGB: colours of the model's palette (model ids), not dataset file values."""

    def values(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map's values at its own depth ((H, W) integers, or (H, W, 3) colours),
        resized to ``size`` (nearest) when given. A file is decoded once and, when resized,
        read row by row, only the rows and columns nearest sampling picks: no second
        full-size copy of it is made."""
        if isinstance(self.obj, np.ndarray):
            arr = _integral(self.obj, self.what)
            return resize_nearest(arr, size) if size is not None else arr
        img = self.obj
        try:
            img.load()
        except Exception as exc:
            raise LabelError(f"cannot decode {self.what} ({type(exc).__name__}); give an intact PNG") from None
        if size is None or tuple(size) == self.shape:
            return _pixels(img)
        h, w = self.shape
        rows, cols = _nearest_index(h, size[0]), _nearest_index(w, size[1])
        first = _pixels(img.crop((0, int(rows[0]), w, int(rows[0]) + 1)))[0, cols]
        out = np.empty((len(rows), *first.shape), first.dtype)
        for i, r in enumerate(rows):
            out[i] = _pixels(img.crop((0, int(r), w, int(r) + 1)))[0, cols]
        return out


def _pixels(img: Image.Image) -> np.ndarray:
    """A decoded image's pixels: values, or RGB colours (RGBA's alpha dropped)."""
    if img.mode == "RGBA":
        img = img.convert("RGB")
    arr = np.asarray(img)
    return arr.view(np.uint8) if arr.dtype == bool else arr


def _integral(arr: np.ndarray, what: str) -> np.ndarray:
    """An array of class ids as integers (bool and integral floats accepted)."""
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if not bad.any():
            return arr.astype(np.int64)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise LabelError(f"{what} holds non-integer values of dtype {arr.dtype} (e.g. {arr[where]!r} at {where}); "
                         f"class ids must be integers")
    raise LabelError(f"{what} holds values of dtype {arr.dtype}; class ids must be integers")


def read_values(x: LabelLike, *, palette: Sequence[Sequence[int]] | None = None, what: str = "label"
                ) -> tuple[np.ndarray, bool]:
    """Deprecated (goes in the next version): read label maps with
    :meth:`sdk.intake.LabelIntake.read`, or :class:`MapSource` for a file's raw values.

    A map's values as the file holds them (no resizing, no convention; 8- or 16-bit grey in
    its own dtype, palette PNGs their indices) and whether it was colour-coded (an RGB image,
    decoded to int32 ids through ``palette``: its colours stand for model ids)."""
    deprecated("sdk.labels.read_values is deprecated: read label maps with s.intake.read(x) (a Label: .ids), "
               "or sdk.labels.MapSource(x).values() for a file's raw values")
    return _read_values(x, palette, what)


def _read_values(x: LabelLike, palette: Sequence[Sequence[int]] | None, what: str) -> tuple[np.ndarray, bool]:
    src = MapSource(x, what)
    values = src.values()
    if src.coloured:
        return colours_to_ids(values, palette, what), True
    return values, False


def read_ids(x: LabelLike, *, palette: Sequence[Sequence[int]] | None = None, what: str = "label") -> np.ndarray:
    """Deprecated (goes in the next version): :func:`read_values` without the flag. Read label
    maps with :meth:`sdk.intake.LabelIntake.read`, which also fits the map to a model and
    applies its convention."""
    deprecated("sdk.labels.read_ids is deprecated: read label maps with s.intake.read(x) (a Label: .ids), "
               "or sdk.labels.MapSource(x).values() for a file's raw values")
    return _read_values(x, palette, what)[0]


def colours_to_ids(rgb: np.ndarray, palette: Sequence[Sequence[int]] | None, what: str = "label") -> np.ndarray:
    """(H, W, 3) colours of the model's palette -> int32 ids (a shared colour: the lowest id)."""
    if palette is None:
        raise LabelError(f"{what} is an RGB image but this model has no palette; give an index or grayscale PNG")
    key = pack_colours(rgb)
    lut: dict[int, int] = {}
    for i, (r, g, b) in enumerate(palette):
        lut.setdefault((r << 16) | (g << 8) | b, i)
    colours, inverse = np.unique(key, return_inverse=True)
    ids = np.empty(len(colours), dtype=np.int32)
    for j, c in enumerate(colours):
        if int(c) not in lut:
            y, x = np.argwhere(key == c)[0]
            raise LabelError(f"{what} pixel at ({y}, {x}) has colour {tuple(int(v) for v in rgb[y, x])}, "
                             f"which is not in this model's palette; give an index or grayscale PNG of class ids")
        ids[j] = lut[int(c)]
    return ids[inverse].reshape(key.shape)


def pack_colours(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours -> one int32 per colour."""
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]


# -- checks and resizing ----------------------------------------------------------------------
def check_ids(ids: np.ndarray, num_classes: int, what: str = "label") -> None:
    """Every id must be in 0..num_classes-1; the error names the first offender."""
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        y, x = np.argwhere(bad)[0][-2:]
        value = ids[..., y, x].ravel()[0] if ids.ndim > 2 else ids[y, x]
        raise LabelError(f"{what} contains id {int(value)} at ({int(y)}, {int(x)}); "
                         f"this model takes ids 0..{num_classes - 1}")


def check_size(ids: np.ndarray | tuple[int, int], size: tuple[int, int], what: str = "label") -> None:
    """An (H, W) map (or its shape) must be ``size``; the error says how to resize it."""
    shape = tuple(ids) if isinstance(ids, tuple) else tuple(ids.shape[-2:])
    if shape != tuple(size):
        h, w = size
        raise LabelError(f"{what} is {shape[0]}x{shape[1]} (HxW); this model takes {h}x{w} maps. "
                         f"Resize it with nearest-neighbour (sdk.labels.resize_ids(ids, ({h}, {w})))")


@functools.lru_cache(maxsize=64)
def _nearest_index(n: int, m: int) -> np.ndarray:
    """The source index PIL's NEAREST resize picks for each of ``m`` outputs from ``n`` inputs.

    Read off PIL itself (a row of indices resized as a 32-bit image), so maps are resized to
    the official test code's pixels exactly. The scaling is separable: rows and columns are
    indexed independently and the map keeps its own dtype (PIL's own resize of a 16-bit
    'I;16' image picks other pixels than that of the same map as 'L' or 'I')."""
    row = Image.fromarray(np.arange(n, dtype=np.int32)[None], "I")
    return np.asarray(row.resize((m, 1), Image.NEAREST))[0].astype(np.intp)


def resize_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) -> ``size`` = (H', W') with the pixels PIL NEAREST picks, in the same dtype."""
    h, w = values.shape[:2]
    if (h, w) == tuple(size):
        return values
    return values[np.ix_(_nearest_index(h, size[0]), _nearest_index(w, size[1]))]


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) id map to ``size`` = (H, W), as PIL NEAREST."""
    return resize_nearest(np.asarray(ids), size)


def instance_edges(inst: np.ndarray) -> np.ndarray:
    """(N, H, W) instance ids -> (N, H, W) uint8 edges (0/1), as SPADE's ``get_edges``:
    a pixel is an edge when its left/right or top/bottom neighbour has another id."""
    edge = np.zeros(inst.shape, dtype=bool)
    dx = inst[:, :, 1:] != inst[:, :, :-1]
    dy = inst[:, 1:, :] != inst[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge.view(np.uint8)


# -- RGB images (style references, image-to-image inputs, outputs) ------------------------------
def to_image(x: np.ndarray) -> Image.Image:
    """An image as a PIL RGB image: (H, W, 3) uint8 as it is (the graphs' 8-bit output),
    or (3, H, W) float in [-1, 1], rounded as the graphs round."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(x), "RGB")
    arr = np.clip((x.astype(np.float32).transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def read_image(x: str | Path | bytes | Image.Image | np.ndarray, size: tuple[int, int], what: str = "image"
               ) -> np.ndarray:
    """An RGB image (path, bytes, PIL, or (H, W, 3) uint8 array) -> (3, H, W) float32 in [-1, 1]
    at ``size`` (bicubic). Photos may be JPEGs; the size limit of label maps applies."""
    obj = open_image(x, what, lossless=False)
    if isinstance(obj, np.ndarray):
        if obj.ndim != 3 or obj.shape[2] != 3 or obj.dtype != np.uint8:
            raise LabelError(f"{what} array must be (H, W, 3) uint8 RGB, got {obj.shape} {obj.dtype}")
        obj = Image.fromarray(obj, "RGB")
    try:
        img = obj.convert("RGB")
    except Exception as exc:
        raise LabelError(f"cannot read {what} as an RGB image ({type(exc).__name__}); give a PNG or JPEG") from None
    h, w = size
    if img.size != (w, h):
        img = img.resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


__all__ = ["COLOUR_MODES", "LOSSY_FORMATS", "LabelLike", "MAX_PIXELS", "MapSource", "VALUE_MODES", "check_ids",
           "check_pixels", "check_size", "colours_to_ids", "instance_edges", "is_batch", "open_image",
           "pack_colours", "read_ids", "read_image", "read_values", "resize_ids", "resize_nearest", "to_image"]
