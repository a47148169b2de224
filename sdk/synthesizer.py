"""``Synthesizer``: the one public entry point of the runtime.

>>> from sdk import Synthesizer
>>> s = Synthesizer.from_pretrained("bundles/spade-cityscapes")
>>> image = s("samples/cityscapes_label.png", seed=0)

A call reads as numbered steps (check inputs, encode the label map, prepare latents,
run, post-process) and never branches on the backend: every backend is a
:class:`~sdk.backends.base.Runner` over the same named tensors.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from . import labels as L
from .atomic import atomic_dir
from .backends import Runner, make_runner, resolve_backend
from .bundle import Bundle
from .errors import LabelError, SDKError
from .per_class import PerClassMixin

LabelInput = L.LabelLike | Sequence[L.LabelLike]
ImageLike = str | Path | Image.Image | np.ndarray
ImageInput = ImageLike | Sequence[ImageLike]
ASPECT_TOLERANCE = 0.01
"""Relative aspect-ratio difference up to which ``translate`` resizes its input."""


class Synthesizer(PerClassMixin):
    """Runs a bundle: label map (and optional style, instance map, seed) -> PIL images."""

    def __init__(self, bundle: Bundle, backend: str = "auto", **backend_options: Any) -> None:
        self.bundle = bundle
        self.backend = resolve_backend(bundle, backend)
        self._options = backend_options
        self._runners: dict[str, Runner] = {}

    # -- loading and saving -----------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, backend: str = "auto", *, verify: bool = True,
                        **backend_options: Any) -> "Synthesizer":
        """Open a bundle folder. ``verify`` checks every file's sha256 against the manifest."""
        return cls(Bundle(path, verify=verify), backend, **backend_options)

    def save_pretrained(self, path: str | Path) -> Path:
        """Copy the bundle to ``path`` (atomically) and verify the copy."""
        path = Path(path)
        if path.resolve() == self.bundle.path.resolve():
            return path
        with atomic_dir(path) as tmp:
            shutil.copytree(self.bundle.path, tmp, dirs_exist_ok=True)
        Bundle(path, verify=True)
        return path

    def runner(self, graph: str = "model") -> Runner:
        if graph not in self._runners:
            self._runners[graph] = make_runner(self.bundle, self.backend, graph, **self._options)
        return self._runners[graph]

    @property
    def info(self) -> dict[str, Any]:
        m = self.bundle.manifest
        return {k: m.get(k) for k in ("name", "family", "task", "resolution", "label", "graphs", "tools")}

    def __repr__(self) -> str:
        return f"Synthesizer({self.bundle.name!r}, backend={self.backend!r}, path='{self.bundle.path}')"

    # -- synthesis --------------------------------------------------------------------
    def __call__(self, label: LabelInput | None = None, *, seed: int | None = None,
                 z: np.ndarray | None = None, style: Any = None, instance: LabelInput | None = None,
                 n: int = 1, codes: np.ndarray | None = None) -> Image.Image | list[Image.Image]:
        """Synthesize images.

        Args:
            label: label map (index/grayscale/RGB-palette PNG path, PIL image, or (H, W)
                integer array), or a list of them for a batch. Unconditional models take none.
            seed: seeds the latent; the same seed gives the same image.
            z: explicit latent, (D,) or (N, D); overrides ``seed``.
            codes: per-class codes (C, D) or (N, C, D) of models with per-class codes
                (GroupDNet; see :mod:`sdk.per_class`); overrides ``seed``, which otherwise
                draws random codes for every class.
            style: reference image whose style (encoder mean) is used (models with an encoder).
            instance: instance-id map(s) for models that take instance edges; when omitted,
                edges of the label map itself are used.
            n: samples per label map.

        Returns:
            One PIL image, or a list when a batch of labels or ``n > 1`` was given.
        """
        # 1. check inputs
        ids, inst, batched = self._check_labels(label, instance)
        if n < 1:
            raise SDKError(f"n must be >= 1, got {n}")
        count = (len(ids) if ids is not None else 1) * n
        # 2. feed the label map as class ids (the graph one-hot encodes on its device) and
        #    the instance edges as uint8
        feeds = self._encode_labels(ids, inst, n)
        # 3. prepare latents
        feeds.update(self._latents(count, seed=seed, z=z, style=style, codes=codes))
        # 4. run, fetching only the 8-bit image
        name = self._image_outputs()[0]
        out = self.runner("model").run(feeds, outputs=[name])[name]
        # 5. post-process
        images = [L.to_image(x) for x in out]
        return images if batched or n > 1 else images[0]

    def synthesize_many(self, labels: Sequence[L.LabelLike], seeds: Sequence[int | None],
                        styles: Sequence[Any] | None = None) -> list[Image.Image]:
        """One image per label map, each with its own seed (and style), in one runner call.

        ``synthesize_many(labels, seeds)[i]`` is ``s(labels[i], seed=seeds[i], style=styles[i])``
        (the same latent or per-class codes); batch jobs and servers use it to batch
        requests that differ in seed. Models without a latent ignore the seeds.
        """
        labels = list(labels)
        if len(seeds) != len(labels) or (styles is not None and len(styles) != len(labels)):
            raise SDKError(f"synthesize_many takes one seed (and style) per label map: got {len(labels)} "
                           f"label maps, {len(seeds)} seeds" + ("" if styles is None else f", {len(styles)} styles"))
        if not labels:
            return []
        styles = list(styles) if styles is not None else [None] * len(labels)
        # Each image's latent exactly as a single call would draw it, then stacked.
        parts = [self._latents(1, seed=k, z=None, style=st) for k, st in zip(seeds, styles)]
        if not parts[0]:  # no latent input: the seeds change nothing
            return self(labels)
        (name, kind), = [(n, "codes" if self.has_codes else "z") for n in parts[0]]
        stacked = np.concatenate([p[name] for p in parts])
        return self(labels, **{kind: stacked})

    def variations(self, label: L.LabelLike | None = None, n: int = 4, seed: int = 0) -> list[Image.Image]:
        """``n`` diverse images for one label map (different latents from one seed).

        Unconditional models take no label: ``s.variations(n=4, seed=0)``.
        """
        self._require_input("latent", "variations")
        return self(label, seed=seed, n=n) if n > 1 else [self(label, seed=seed)]

    def interpolate(self, label: L.LabelLike | None = None, *, seed_a: int, seed_b: int,
                    steps: int = 8) -> list[Image.Image]:
        """Frames along the spherical interpolation between the latents of two seeds.

        The first frame equals ``s(label, seed=seed_a)``, the last ``s(label, seed=seed_b)``
        (for "sphere" latents too: slerp keeps unit vectors on the sphere). Unconditional
        models take no label: ``s.interpolate(seed_a=0, seed_b=1, steps=8)``.
        """
        if steps < 2:
            raise SDKError(f"steps must be >= 2 (the two end points), got {steps}")
        spec = self._require_input("latent", "interpolate")
        za = self._sample(spec, 1, np.random.default_rng(seed_a))[0]
        zb = self._sample(spec, 1, np.random.default_rng(seed_b))[0]
        zs = np.stack([slerp(za, zb, t) for t in np.linspace(0.0, 1.0, steps)])
        if label is None:
            out = self(z=zs, n=steps)
        else:
            out = self([label] * steps, z=zs)  # the same label map at every step
        return out if isinstance(out, list) else [out]

    def translate(self, image: ImageInput, *, all_scales: bool = False
                  ) -> Image.Image | dict[str, Image.Image] | list[Image.Image] | list[dict[str, Image.Image]]:
        """Image-to-image models (MSG U-Net): translate an RGB image.

        Args:
            image: PNG/JPEG path, PIL image or (H, W, 3) uint8 array, or a list of them for
                a batch. An image of another size but the model's aspect ratio (within 1%)
                is resized (bicubic) to the bundle resolution; another aspect ratio is an
                error, since resizing would distort it: crop or pad it first.
            all_scales: return every scale the graph outputs, not only the full-size one.

        Returns:
            The full-size PIL image, or with ``all_scales`` a dict {output name: PIL image}
            over every image output in the manifest (full size first); a list of those
            when a list of images was given.
        """
        # 1. check inputs
        spec = self._input("image")
        if self.bundle.task != "image2image" or spec is None:
            how = "s(seed=0)" if self.bundle.task == "unconditional" else "s(label, seed=0)"
            raise SDKError(f"{self.bundle.name} takes no input image (task {self.bundle.task}); "
                           f"call it as {how} (translate() is for image2image models such as msgunet-*)")
        batched = isinstance(image, (list, tuple))
        items = list(image) if batched else [image]
        if not items:
            raise SDKError("empty list of images; give at least one")
        # 2. decode and resize
        feeds = {spec["name"]: np.stack([self._read_input_image(x, f"image[{i}]" if batched else "image")
                                         for i, x in enumerate(items)])}
        # 3. run, fetching only the 8-bit images
        names = self._image_outputs() if all_scales else self._image_outputs()[:1]
        out = self.runner("model").run(feeds, outputs=names)
        # 4. post-process
        float_name = {o["name"]: o["attrs"]["of"] for o in self.bundle.graph("model")["outputs"]
                      if o["kind"] == "image_u8"}
        results = [{float_name[k]: L.to_image(out[k][i]) for k in names} for i in range(len(items))]
        flat = results if all_scales else [r[float_name[names[0]]] for r in results]
        return flat if batched else flat[0]

    def encode_style(self, image: Any) -> np.ndarray:
        """The style code (encoder mean, shape (D,)) of a reference image."""
        if not self.bundle.has_graph("encoder"):
            raise SDKError(f"{self.bundle.name} has no style encoder; export a -vae preset for style-guided synthesis")
        if self.has_codes:
            raise SDKError(f"{self.bundle.name} encodes per class: use s.encode(image, label) -> codes (C, D)")
        img = L.read_image(image, self.bundle.resolution, "style image")
        return self.runner("encoder").run({"image": img[None]})["mu"][0]

    # -- steps ------------------------------------------------------------------------
    def _inputs(self) -> list[dict[str, Any]]:
        return self.bundle.graph("model")["inputs"]

    def _input(self, kind: str) -> dict[str, Any] | None:
        return next((s for s in self._inputs() if s["kind"] == kind), None)

    def _image_outputs(self) -> list[str]:
        """Names of the model graph's 8-bit image outputs, largest (full size) first."""
        outs = [o for o in self.bundle.graph("model")["outputs"] if o["kind"] == "image_u8"]
        return [o["name"] for o in sorted(outs, key=lambda o: -o["shape"][1] * o["shape"][2])]

    def _read_input_image(self, x: ImageLike, what: str) -> np.ndarray:
        """An RGB image -> (3, H, W) in [-1, 1] at the bundle resolution; same aspect ratio only."""
        obj = L._open(x, what)
        h, w = self.bundle.resolution
        if isinstance(obj, np.ndarray) and obj.ndim != 3:
            return L.read_image(obj, (h, w), what)  # raises its (H, W, 3) uint8 message
        h_in, w_in = obj.shape[:2] if isinstance(obj, np.ndarray) else obj.size[::-1]
        if not h_in or not w_in or abs((w_in / h_in) / (w / h) - 1) > ASPECT_TOLERANCE:
            raise SDKError(f"{what} is {h_in}x{w_in} (HxW) but {self.bundle.name} takes {h}x{w}: "
                           f"aspect ratios differ, and resizing would distort it. Crop or pad it to "
                           f"W/H = {w / h:.3g} first")
        return L.read_image(obj, (h, w), what)

    def _require_input(self, kind: str, what: str) -> dict[str, Any]:
        spec = self._input(kind)
        if spec is None:
            raise SDKError(f"{self.bundle.name} takes no {kind} input, so {what} has nothing to vary; "
                           f"use a model with a latent (e.g. a -vae SPADE preset)")
        return spec

    def _check_labels(self, label: LabelInput | None, instance: LabelInput | None
                      ) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
        b = self.bundle
        if b.task == "unconditional":
            if label is not None or instance is not None:
                raise LabelError(f"{b.name} is an unconditional model: it takes no label map. "
                                 f"Call it with a seed only, e.g. s(seed=0, n=4)")
            return None, None, False
        if b.task != "semantic":
            raise SDKError(f"{b.name} is an {b.task} model; use translate(image) instead")
        if label is None:
            raise LabelError(f"{b.name} needs a label map: s(label, seed=...)")
        batched = isinstance(label, (list, tuple)) or (isinstance(label, np.ndarray) and label.ndim == 3)
        items = list(label) if batched else [label]
        if not items:
            raise LabelError("empty list of label maps; give at least one")
        palette = b.label.get("palette")
        ids = [L.read_ids(x, palette=palette) for x in items]
        for i, x in enumerate(ids):
            what = f"label[{i}]" if batched else "label"
            L.check_size(x, b.resolution, what)
            L.check_ids(x, b.num_classes, what)
        inst = None
        if instance is not None:
            if not b.label.get("instance_edge"):
                raise LabelError(f"{b.name} takes no instance map; call it without instance=")
            inst_items = list(instance) if isinstance(instance, (list, tuple)) else [instance]
            if len(inst_items) != len(ids):
                raise LabelError(f"got {len(inst_items)} instance maps for {len(ids)} label maps")
            inst_arr = [L.read_ids(x, what="instance map") for x in inst_items]
            for x, y in zip(inst_arr, ids):
                if x.shape != y.shape:
                    raise LabelError(f"instance map is {x.shape[0]}x{x.shape[1]} but the label map is "
                                     f"{y.shape[0]}x{y.shape[1]}; give maps of the same size")
            inst = np.stack(inst_arr)
        return np.stack(ids), inst, batched

    def _encode_labels(self, ids: np.ndarray | None, inst: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        if ids is None:
            return {}
        feeds: dict[str, np.ndarray] = {}
        spec = self._input("label")
        if spec is not None:
            feeds[spec["name"]] = np.repeat(ids.astype(spec["dtype"], copy=False), n, axis=0)
        edge = self._input("instance_edge")
        if edge is not None:
            # Without an instance map, class boundaries stand in for instance boundaries.
            feeds[edge["name"]] = np.repeat(L.instance_edges(inst if inst is not None else ids), n, axis=0)
        return feeds

    def _latents(self, count: int, *, seed: int | None, z: np.ndarray | None, style: Any,
                 codes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if self._input("codes") is not None:  # per-class codes (GroupDNet): sdk.per_class
            return self._codes_feed(count, seed=seed, codes=codes, z=z, style=style)
        if codes is not None:
            self._codes_spec()  # raises: this model has no per-class codes
        spec = self._input("latent")
        if spec is None:
            if z is not None or style is not None:
                raise SDKError(f"{self.bundle.name} takes no latent: it is deterministic given the label map "
                               f"(z= and style= need a -vae preset or a model with noise input)")
            return {}
        dim = spec["shape"][1]
        if style is not None and z is not None:
            raise SDKError("give either style= or z=, not both")
        if style is not None:
            z = np.repeat(self.encode_style(style)[None], count, axis=0)
        if z is not None:
            z = np.asarray(z, dtype=np.float32)
            z = z[None] if z.ndim == 1 else z
            if z.ndim != 2 or z.shape[1] != dim:
                raise SDKError(f"z must have shape ({dim},) or (N, {dim}); got {z.shape}")
            if len(z) == 1:
                z = np.repeat(z, count, axis=0)
            if len(z) != count:
                raise SDKError(f"z holds {len(z)} latents for {count} images")
        else:
            z = self._sample(spec, count, np.random.default_rng(seed))
        return {spec["name"]: z}

    @staticmethod
    def _sample(spec: dict[str, Any], count: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((count, *spec["shape"][1:]), dtype=np.float32)
        if spec.get("attrs", {}).get("distribution") == "sphere":
            z /= np.linalg.norm(z, axis=-1, keepdims=True)
        return z


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (falls back to linear for nearly parallel vectors)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.clip(np.dot(a.ravel() / na, b.ravel() / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if omega < 1e-4:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)
