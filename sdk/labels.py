"""Label-map I/O and validation, and SPADE's instance edges.

What the graphs must not contain happens here, in numpy: decoding PNGs, checking ids
and extracting instance edges. The one-hot encoding is the graph's own business (on
its device): the host sends class ids (int32), never a float one-hot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image

from .errors import LabelError

LabelLike = Union[str, Path, Image.Image, np.ndarray]


def _open(x: LabelLike, what: str) -> Image.Image | np.ndarray:
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.is_file():
            raise LabelError(f"{what} file {path} does not exist")
        try:
            img = Image.open(path)
            img.load()
        except Exception as exc:
            raise LabelError(f"cannot read {what} {path} as an image ({exc}); give a PNG") from exc
        return img
    if isinstance(x, (Image.Image, np.ndarray)):
        return x
    raise LabelError(f"{what} must be a PNG path, a PIL image or a numpy array, not {type(x).__name__}")


def is_batch(label: object) -> bool:
    """Whether a label argument is several maps: a list or tuple, or an (N, H, W) array."""
    return isinstance(label, (list, tuple)) or (isinstance(label, np.ndarray) and label.ndim == 3)


def read_ids(x: LabelLike, *, palette: Sequence[Sequence[int]] | None = None, what: str = "label") -> np.ndarray:
    """Decode a label map to an (H, W) int64 array of ids.

    Index ('P') PNGs give their indices, grayscale PNGs their values (16-bit ones
    too), RGB PNGs are looked up in ``palette``; numpy arrays must hold integers (or
    integral floats).
    """
    return read_values(x, palette=palette, what=what)[0]


def read_values(x: LabelLike, *, palette: Sequence[Sequence[int]] | None = None, what: str = "label"
                ) -> tuple[np.ndarray, bool]:
    """:func:`read_ids` and whether the map was colour-coded (an RGB image decoded through
    ``palette``, whose colours stand for model ids, not dataset file values)."""
    obj = _open(x, what)
    if isinstance(obj, Image.Image):
        if obj.mode in ("RGB", "RGBA"):
            return _rgb_to_ids(np.asarray(obj.convert("RGB")), palette, what), True
        if obj.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            raise LabelError(f"{what} image has mode {obj.mode}; give an index (P), grayscale (L) or RGB PNG")
        arr = np.asarray(obj)
    else:
        arr = obj
    if arr.size == 0:
        raise LabelError(f"{what} is empty (shape {arr.shape}); give an (H, W) map of class ids")
    if arr.ndim != 2:
        raise LabelError(f"{what} has shape {arr.shape}; give one (H, W) map of class ids "
                         f"(a list of maps for a batch)")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            bad = np.argwhere(~np.isfinite(arr) | (arr != np.round(arr))) if np.issubdtype(arr.dtype, np.floating) else None
            where = f" (e.g. {arr[tuple(bad[0])]!r} at {tuple(int(i) for i in bad[0])})" if bad is not None and len(bad) else ""
            raise LabelError(f"{what} holds non-integer values of dtype {arr.dtype}{where}; "
                             f"class ids must be integers")
    return arr.astype(np.int64), False


def _rgb_to_ids(rgb: np.ndarray, palette: Sequence[Sequence[int]] | None, what: str) -> np.ndarray:
    if palette is None:
        raise LabelError(f"{what} is an RGB image but this model has no palette; give an index or grayscale PNG")
    key = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    lut: dict[int, int] = {}
    for i, (r, g, b) in enumerate(palette):
        lut.setdefault((r << 16) | (g << 8) | b, i)  # shared colours decode to the lowest id
    colours, inverse = np.unique(key, return_inverse=True)
    ids = np.empty(len(colours), dtype=np.int64)
    for j, c in enumerate(colours):
        if int(c) not in lut:
            y, x = np.argwhere(key == c)[0]
            raise LabelError(f"{what} pixel at ({y}, {x}) has colour {tuple(int(v) for v in rgb[y, x])}, "
                             f"which is not in this model's palette; give an index or grayscale PNG of class ids")
        ids[j] = lut[int(c)]
    return ids[inverse].reshape(key.shape)


def check_ids(ids: np.ndarray, num_classes: int, what: str = "label") -> None:
    """Every id must be in 0..num_classes-1; the error names the first offender."""
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        y, x = np.argwhere(bad)[0][-2:]
        value = ids[..., y, x].ravel()[0] if ids.ndim > 2 else ids[y, x]
        raise LabelError(f"{what} contains id {int(value)} at ({int(y)}, {int(x)}); "
                         f"this model takes ids 0..{num_classes - 1}")


def check_size(ids: np.ndarray, size: tuple[int, int], what: str = "label") -> None:
    if tuple(ids.shape[-2:]) != tuple(size):
        h, w = size
        raise LabelError(f"{what} is {ids.shape[-2]}x{ids.shape[-1]} (HxW); this model takes {h}x{w} maps. "
                         f"Resize it with nearest-neighbour (sdk.labels.resize_ids(ids, ({h}, {w})))")


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) id map to ``size`` = (H, W)."""
    h, w = size
    img = Image.fromarray(ids.astype(np.int32), mode="I").resize((w, h), Image.NEAREST)
    return np.asarray(img).astype(np.int64)


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


def to_image(x: np.ndarray) -> Image.Image:
    """An image as a PIL RGB image: (H, W, 3) uint8 as it is (the graphs' 8-bit output),
    or (3, H, W) float in [-1, 1], rounded as the graphs round."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(x), "RGB")
    arr = np.clip((x.astype(np.float32).transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def read_image(x: str | Path | Image.Image | np.ndarray, size: tuple[int, int], what: str = "image") -> np.ndarray:
    """An RGB image (path, PIL, or (H, W, 3) uint8 array) -> (3, H, W) float32 in [-1, 1] at ``size``."""
    obj = _open(x, what)
    if isinstance(obj, np.ndarray):
        if obj.ndim != 3 or obj.shape[2] != 3 or obj.dtype != np.uint8:
            raise LabelError(f"{what} array must be (H, W, 3) uint8 RGB, got {obj.shape} {obj.dtype}")
        obj = Image.fromarray(obj, "RGB")
    img = obj.convert("RGB")
    h, w = size
    if img.size != (w, h):
        img = img.resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
