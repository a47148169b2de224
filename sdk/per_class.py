"""Per-class latent control for models with per-class codes: GroupDNet (SMIS) and OASIS.

GroupDNet gives every class ``c`` of the label map its own latent code; OASIS' 3D noise
lives per pixel, and its bundles take it per class (one noise vector per class, each pixel
reading its class's). Either way the appearance of one class can change while every other
class keeps its code. Codes are plain float32 numpy arrays of shape ``(C, D)`` (``C``
classes, ``D`` values per class; ``(N, C, D)`` for a batch): apps can keep them, edit rows,
and store them with :func:`save_codes` / :func:`load_codes` (``.npy``, written atomically).

>>> s = Synthesizer.from_pretrained("bundles/groupdnet-deepfashion")   # or bundles/oasis-ade20k
>>> image = s(label, seed=3)                                  # codes of seed 3 for every class
>>> image, codes = s.resample(label, classes=[2], seed=7, base=3, return_codes=True)
>>> frames = s.interpolate(label, seed_a=3, seed_b=7, classes=[2], steps=8)   # class 2 only
>>> image = s.mix(label, styles={2: (ref_image, ref_label)}, base=codes)      # GroupDNet: encoder
>>> frames = s.morph(image_a, label_a, image_b, label_b, steps=8)             # GroupDNet: encoder
>>> codes = s.encode(image_a, label_a)                         # (C, D) encoder mean (GroupDNet)

:class:`PerClassLabelToImage` is the pipeline ``Synthesizer.from_pretrained`` returns for
these bundles: a :class:`~sdk.synthesizer.LabelToImage` with these calls (and without
``encode_style``: the encoder here gives codes per class, ``encode``).

A seed's codes (:meth:`PerClassLabelToImage.sample_codes`) are drawn as the model was trained:
GroupDNet one code per class; OASIS one noise vector given to every class, so ``s(label,
seed=k)`` is the official broadcast-noise image and a redrawn class takes seed ``k``'s
vector. OASIS has no encoder: the calls that encode photos say so.

Only the listed classes' rows of the codes change; whether *pixels* of other classes
stay put depends on the network: GroupDNet's early layers are grouped by class, its last
layers blend classes; OASIS' noise also feeds its first, coarse layers, whose 3x3
convolutions reach across regions. ``benchmarks/resample_locality.py`` measures how far
a change spreads. Rows, not pixels, are what these methods guarantee.
"""
from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .errors import LabelError, SDKError
from .inputs import check_seed
from .intake import Label
from .labels import LabelLike, is_batch, read_image
from .latents import ClassCodes
from .manifest import GraphRecord, Kind
from .notices import notice
from .synthesizer import WHY_NO_CODES, LabelToImage, _NotHere

ImageLike = Union[str, Path, Image.Image, np.ndarray]
Base = Union[np.ndarray, int, None]
StyleRef = Union[Tuple[ImageLike, LabelLike], np.ndarray]

DEFAULT_BASE_SEED = 0
"""Seed of the base codes when ``resample`` / ``mix`` get no ``base``."""



def save_codes(path: str | Path, codes: np.ndarray) -> Path:
    """Store codes ((C, D) or (N, C, D)) as a ``.npy`` file, atomically; returns the path."""
    arr = np.asarray(codes, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise SDKError(f"codes must have shape (C, D) or (N, C, D); got {arr.shape}")
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def load_codes(path: str | Path) -> np.ndarray:
    """Read codes written by :func:`save_codes` (float32, no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise SDKError(f"codes file {path} does not exist")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SDKError(f"cannot read {path} as codes ({exc}); write them with sdk.per_class.save_codes") from exc
    if arr.ndim not in (2, 3) or not np.issubdtype(arr.dtype, np.floating):
        raise SDKError(f"{path} holds a {arr.dtype} array of shape {arr.shape}, not codes (C, D) or (N, C, D)")
    return arr.astype(np.float32)


def interpolate_codes(a: np.ndarray, b: np.ndarray, t: float,
                      mode: Literal["slerp", "linear"] = "slerp") -> np.ndarray:
    """Interpolate (C, D) codes class by class: ``t`` = 0 gives ``a``, 1 gives ``b`` exactly.

    ``slerp`` interpolates each class's code on the great circle between its two codes
    (the norm is interpolated linearly, so codes of different lengths morph smoothly;
    nearly parallel codes fall back to linear); ``linear`` is ``(1 - t) a + t b``.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if t <= 0.0:
        return a.copy()
    if t >= 1.0:
        return b.copy()
    if mode == "linear":
        return ((1 - t) * a + t * b).astype(np.float32)
    if mode != "slerp":
        raise SDKError(f"mode must be 'slerp' or 'linear', got {mode!r}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na = np.linalg.norm(a64, axis=-1, keepdims=True)
    nb = np.linalg.norm(b64, axis=-1, keepdims=True)
    ua, ub = a64 / np.maximum(na, 1e-12), b64 / np.maximum(nb, 1e-12)
    omega = np.arccos(np.clip(np.sum(ua * ub, axis=-1, keepdims=True), -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1.0), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1.0), t)
    direction = wa * ua + wb * ub  # unit length along the arc
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
    out = np.where(safe, direction * ((1 - t) * na + t * nb), (1 - t) * a64 + t * b64)
    return out.astype(np.float32)


class PerClassLabelToImage(LabelToImage, serves=("semantic", "codes")):
    """Label-to-image with per-class codes (GroupDNet, OASIS): every call of
    :class:`~sdk.synthesizer.LabelToImage`, ``s(label, codes=...)``, and per-class control.

    ``mix``, ``morph`` and ``encode`` run the encoder: OASIS bundles have none (OASIS draws
    its noise), and those calls say so in one line; ``mix`` with codes given as arrays needs
    no encoder.
    """

    latents: ClassCodes
    encode_style = _NotHere()  # the encoder gives codes per class: ``encode(image, label)``

    @property
    def codes_shape(self) -> tuple[int, int]:
        """(C, D): classes and code length of one image's codes."""
        return self.latents.shape

    def sample_codes(self, seed: int | None = None) -> np.ndarray:
        """Random codes (C, D) from ``seed``: exactly those ``s(label, seed=seed)`` uses
        (OASIS: one noise vector in every row)."""
        return self.latents.sample(seed)[0]

    def encode(self, image: ImageLike, label: LabelLike) -> np.ndarray:
        """Per-class codes (C, D) of a real image: the encoder mean ``mu`` of each class.

        Classes absent from ``label`` get the encoder's code of an empty (all-black) crop.
        The result is a plain float32 array: store it with :func:`save_codes`.
        """
        return self._encode_batch([(image, label)], "image")[0]

    def resample(self, label: LabelLike, classes: Iterable[int | str], *, seed: int | None = None,
                 base: Base = None, instance: LabelLike | None = None,
                 return_codes: bool = False) -> Image.Image | tuple[Image.Image, np.ndarray]:
        """Change the appearance of ``classes`` only; every other class keeps its code.

        Args:
            label: one label map.
            classes: class ids (or names from the bundle's ``label.classes``) whose codes are redrawn.
            seed: the listed classes take the codes that ``seed`` gives them, i.e. their
                rows of :meth:`sample_codes` (``seed``); ``seed == base`` reproduces the base.
            base: codes of every other class: a (C, D) array (e.g. from ``encode`` or a
                previous ``return_codes``), or a seed; default seed ``DEFAULT_BASE_SEED`` (0),
                so ``resample(label, [c], seed=k)`` edits the image of ``s(label, seed=0)``.
            instance: instance-id map (models with instance edges).
            return_codes: also return the (C, D) codes that were rendered.

        Returns:
            The image, or ``(image, codes)`` with ``return_codes``.
        """
        idx = self._class_ids(classes, "classes")
        read = self._read_one(label, instance)
        self._notice_absent(read, idx)
        return self._render(read, self.resample_codes(idx, seed=seed, base=base), return_codes)

    def resample_codes(self, classes: Iterable[int | str], *, seed: int | None = None, base: Base = None) -> np.ndarray:
        """The (C, D) codes :meth:`resample` renders, without rendering: ``base``'s codes
        (default seed 0) with the rows of ``classes`` taken from seed ``seed``'s. For apps
        that keep the codes and render them themselves (``s(label, codes=...)``)."""
        codes = self._base_codes(base)
        idx = self._class_ids(classes, "classes")
        codes[idx] = self.sample_codes(seed)[idx]
        return codes

    def interpolate(self, label: LabelLike | None = None, *, seed_a: int, seed_b: int, steps: int = 8,
                    classes: Iterable[int | str] | None = None) -> list[Image.Image]:
        """Frames from seed ``seed_a``'s image to seed ``seed_b``'s, class by class: with
        ``classes`` only those classes move and every other class keeps seed ``seed_a``'s
        code (:meth:`interpolate_classes`). The first frame equals ``s(label, seed=seed_a)``,
        the last ``s(label, seed=seed_b)`` (all classes) or
        ``s.resample(label, classes, seed=seed_b, base=seed_a)``."""
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise SDKError(f"steps must be >= 2 (the two end points, a whole number), got {steps!r}")
        if label is None:
            raise LabelError(self._wrong_task("needs a label map"))
        return self.interpolate_classes(label, seed_a=seed_a, seed_b=seed_b, classes=classes, steps=steps)

    def interpolate_classes(self, label: LabelLike, *, seed_a: int, seed_b: int,
                            classes: Iterable[int | str] | None = None, steps: int = 8,
                            mode: Literal["slerp", "linear"] = "slerp", instance: LabelLike | None = None,
                            batch_size: int = 4) -> list[Image.Image]:
        """Frames in which ``classes`` (default: every class) move from their look in seed
        ``seed_a``'s image to their look in seed ``seed_b``'s; every other class keeps seed
        ``seed_a``'s code.

        The first frame is ``s(label, seed=seed_a)``, the last ``s.resample(label, classes,
        seed=seed_b, base=seed_a)`` (``s(label, seed=seed_b)`` for every class); codes are
        interpolated class by class (:func:`interpolate_codes`). ``s.interpolate(label, ...,
        classes=...)`` calls this.
        """
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise SDKError(f"steps must be >= 2 (the two end points, a whole number), got {steps!r}")
        if mode not in ("slerp", "linear"):
            raise SDKError(f"mode must be 'slerp' or 'linear', got {mode!r}")
        a = self.sample_codes(check_seed(seed_a, "seed_a"))
        b = self.sample_codes(check_seed(seed_b, "seed_b"))
        read = self._read_one(label, instance)
        if classes is None:
            idx = list(range(len(a)))
        else:
            idx = self._class_ids(classes, "classes")
            self._notice_absent(read, idx)
        codes = np.repeat(a[None], steps, axis=0)  # unlisted rows stay exactly seed_a's
        for i, t in enumerate(np.linspace(0.0, 1.0, steps)):
            codes[i, idx] = interpolate_codes(a[idx], b[idx], float(t), mode)
        return self._render_frames(read, codes, batch_size)

    def mix(self, label: LabelLike, styles: Mapping[int, StyleRef], *, base: Base = None,
            instance: LabelLike | None = None,
            return_codes: bool = False) -> Image.Image | tuple[Image.Image, np.ndarray]:
        """Appearance mixture: each listed class looks like that class in its own reference.

        Args:
            label: the label map to render.
            styles: ``{class_id: (ref_image, ref_label)}``; class ``c`` takes row ``c`` of
                ``encode(ref_image, ref_label)`` (the encoder mean). A (D,) array is taken
                as the code itself. Each reference label must contain its class.
            base: codes of the unlisted classes, as in :meth:`resample` (default seed 0).
            instance: instance-id map (models with instance edges).
            return_codes: also return the (C, D) codes that were rendered.
        """
        codes = self._base_codes(base)
        c, d = codes.shape
        refs: list[tuple[int, tuple[ImageLike, LabelLike]]] = []
        for cls, ref in styles.items():
            cls = self._class_ids([cls], "styles")[0]
            if isinstance(ref, np.ndarray):
                if ref.shape != (d,):
                    raise SDKError(f"styles[{cls}] is an array of shape {ref.shape}; a code has shape ({d},)")
                codes[cls] = ref
            elif isinstance(ref, (tuple, list)) and len(ref) == 2:
                refs.append((cls, (ref[0], ref[1])))
            else:
                raise SDKError(f"styles[{cls}] must be (reference image, reference label) or a ({d},) code")
        if refs:
            self._encoder()
            for cls, (_, ref_label) in refs:
                ids = self._ids(ref_label, f"the reference label of class {cls}")
                if not (ids == cls).any():
                    raise LabelError(f"the reference label for class {cls} has no pixel of class {cls}; "
                                     f"give a reference whose label map contains it")
            mus = self._encode_batch([r for _, r in refs], "styles")
            for (cls, _), mu in zip(refs, mus):
                codes[cls] = mu[cls]
        return self._render(self._read_one(label, instance), codes, return_codes)

    def morph(self, image_a: ImageLike, label_a: LabelLike, image_b: ImageLike, label_b: LabelLike,
              *, steps: int = 8, label: LabelLike | None = None, mode: Literal["slerp", "linear"] = "slerp",
              instance: LabelLike | None = None, batch_size: int = 4) -> list[Image.Image]:
        """Frames morphing the appearance of image A into that of image B, class by class.

        Both images are encoded (:meth:`encode`); frame ``i`` renders
        ``interpolate_codes(codes_a, codes_b, i / (steps - 1), mode)`` on ``label``
        (default ``label_a``), so the first frame is ``s(label, codes=codes_a)`` and the
        last ``s(label, codes=codes_b)``. ``mode``: per-class ``"slerp"`` (default) or
        ``"linear"``. Frames are rendered ``batch_size`` at a time.
        """
        if steps < 2:
            raise SDKError(f"steps must be >= 2 (the two end points), got {steps}")
        if batch_size < 1:
            raise SDKError(f"batch_size must be >= 1, got {batch_size}")
        if mode not in ("slerp", "linear"):
            raise SDKError(f"mode must be 'slerp' or 'linear', got {mode!r}")
        code_a, code_b = self._encode_batch([(image_a, label_a), (image_b, label_b)], "morph")
        target = self._read_one(label_a if label is None else label, instance)
        codes = np.stack([interpolate_codes(code_a, code_b, t, mode) for t in np.linspace(0.0, 1.0, steps)])
        return self._render_frames(target, codes, batch_size)

    # -- steps ------------------------------------------------------------------------
    def _ids(self, label: LabelLike, what: str) -> np.ndarray:
        """A reference label map's model ids (the encoder takes no edges)."""
        return self.intake.read(label, what=what, regions_as_edges=True).ids

    def _encoder(self) -> GraphRecord:
        """The encoder graph's record, or the one line saying why there is none."""
        codes = self.latents
        if not self.bundle.has_graph("encoder"):
            if codes.broadcast:  # OASIS: noise in, no encoder by design
                raise SDKError(f"{self.bundle.name} has no encoder (OASIS draws its noise; it cannot encode a "
                               f"photo): redraw classes by seed with s.resample(label, classes, seed=) or "
                               f"s.interpolate(label, seed_a=, seed_b=, classes=), or give codes=")
            raise SDKError(f"{self.bundle.name} has no encoder graph; re-export the bundle to encode images")
        return self.bundle.graph("encoder")

    def _read_one(self, label: LabelLike | Label, instance: LabelLike | None) -> Label:
        """One label map (and instance map) read by the intake, once for the whole call."""
        if is_batch(label):
            raise LabelError("give one label map here (a batch: call s(labels, codes=...))")
        return self.intake.read(label, instance)

    def _render_frames(self, label: Label, codes: np.ndarray, batch_size: int) -> list[Image.Image]:
        """One image per row of ``codes`` (S, C, D) on ``label``, ``batch_size`` at a time."""
        if batch_size < 1:
            raise SDKError(f"batch_size must be >= 1, got {batch_size}")
        frames: list[Image.Image] = []
        for i in range(0, len(codes), batch_size):
            chunk = codes[i:i + batch_size]
            frames.extend(self([label] * len(chunk), codes=chunk))
        return frames

    def _notice_absent(self, label: Label, classes: list[int]) -> None:
        """One notice when listed classes have no pixel in the label map: there is no region to redraw
        (OASIS reads no code of an absent class; GroupDNet's first layers read every code)."""
        present = np.unique(label.ids)
        absent = [c for c in classes if c not in present]
        if absent:
            notice(f"{self.bundle.name}: class{'es' if len(absent) > 1 else ''} {', '.join(map(str, absent))} "
                   f"{'have' if len(absent) > 1 else 'has'} no pixel in this label map: no region of "
                   f"{'them' if len(absent) > 1 else 'it'} to redraw")

    def _base_codes(self, base: Base) -> np.ndarray:
        if base is None:
            return self.sample_codes(DEFAULT_BASE_SEED)
        if isinstance(base, (int, np.integer)) and not isinstance(base, bool):
            return self.sample_codes(int(base))
        arr = self.latents.check(base)
        if arr.ndim != 2:
            raise SDKError(f"base must be one image's codes {self.codes_shape} or a seed; got shape {arr.shape}")
        return arr.copy()

    def _class_ids(self, classes: Iterable[int | str], what: str) -> list[int]:
        """Class ids (0..C-1) or names from the bundle's class list (``label.classes``) -> ids."""
        c = self.codes_shape[0]
        ids = [classes] if isinstance(classes, (int, np.integer, str)) else list(classes)
        if not ids:
            raise SDKError(f"{what} is empty; list at least one class id")
        names = list((self.bundle.label or {}).get("classes") or [])
        out = []
        for x in ids:
            if isinstance(x, str) and x in names:
                x = names.index(x)
            elif isinstance(x, str):
                close = difflib.get_close_matches(x, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SDKError(f"{what} holds {x!r}, which is not a class name of {self.bundle.name}{hint}; give "
                               f"ids 0..{c - 1} or names from python -m sdk info --json (label.classes)")
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= x < c:
                raise SDKError(f"{what} holds {x!r}; class ids are integers 0..{c - 1}")
            out.append(int(x))
        return out

    def _encode_batch(self, pairs: Sequence[tuple[ImageLike, LabelLike]], what: str) -> np.ndarray:
        """Encoder means (N, C, D) of (image, label) pairs, in one encoder run."""
        enc = self._encoder()
        names = {s.kind: s.name for s in enc.inputs}
        mu = enc.outputs_of(Kind.MU)[0].name
        ids = np.stack([self._ids(lab, f"{what} label[{i}]") for i, (_, lab) in enumerate(pairs)])
        imgs = np.stack([read_image(img, self.bundle.resolution, f"{what} image") for img, _ in pairs])
        feeds = {names[Kind.IMAGE]: imgs, names[Kind.LABEL]: ids}
        return self.runner("encoder").run(feeds, outputs=[mu])[mu]

    def _render(self, label: Label, codes: np.ndarray,
                return_codes: bool) -> Image.Image | tuple[Image.Image, np.ndarray]:
        image = self(label, codes=codes)
        return (image, codes) if return_codes else image


__all__ = ["DEFAULT_BASE_SEED", "PerClassLabelToImage", "WHY_NO_CODES", "interpolate_codes", "load_codes",
           "save_codes"]
