"""Pipelines: one class per task, the one a bundle needs.

>>> from sdk import Synthesizer
>>> s = Synthesizer.from_pretrained("bundles/spade-cityscapes")   # a LabelToImage
>>> image = s("samples/cityscapes_label.png", seed=0)

``Synthesizer.from_pretrained(bundle)`` -- and ``Synthesizer(Bundle(...))`` -- return the
class for the bundle's task and latent kind, as diffusers' ``from_pretrained`` returns the
pipeline a checkpoint needs. Each class has only the calls that work on its bundles:

========================  ==========================================  ==================================
class                     bundles (manifest ``task``; latent kind)    calls
========================  ==========================================  ==================================
:class:`LabelToImage`     ``semantic``, no latent or a vector one:    ``s(label)``, ``stream``,
                          SPADE (-vae: style encoder), pix2pixHD,     ``synthesize_many``, ``variations``,
                          DP-SIMS                                     ``interpolate``, ``encode_style``
``PerClassLabelToImage``  ``semantic`` with per-class ``codes``:      LabelToImage's but ``encode_style``;
(:mod:`sdk.per_class`)    GroupDNet, OASIS                            ``sample_codes``, ``resample``,
                                                                      ``resample_codes``, ``interpolate``
                                                                      per class, ``mix``, ``morph``,
                                                                      ``encode``
:class:`Unconditional`    ``unconditional``: ProGAN                   ``s(seed=)``, ``stream``,
                                                                      ``variations``, ``interpolate``
:class:`ImageToImage`     ``image2image``: MSG U-Net                  ``s(image)`` = ``translate``
========================  ==========================================  ==================================

They share :class:`Synthesizer`: the bundle, its runners, the label intake, batching and
output conversion. A call another class has is an :class:`AttributeError` that names who has
it (``'LabelToImage' object has no attribute 'mix': per-class codes are GroupDNet's and
OASIS' ...``); it is an :class:`~sdk.errors.SDKError` too, so the CLI prints it as its one
line. A call reads as numbered steps (check inputs, encode the label map, prepare latents,
run, post-process) and never branches on the backend: every backend is a
:class:`~sdk.backends.base.Runner` over the same named tensors.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from . import memory
from .atomic import atomic_dir
from .backends import Runner, check_options, make_runner, resolve_backend
from .bundle import Bundle
from .deprecation import deprecated
from .editor import Editor
from .errors import BackendError, LabelError, SDKError
from .inputs import check_batch_size, check_count, check_output, check_seed
from .intake import Label, LabelIntake
from .labels import LabelLike, is_batch, open_image, read_image, to_image
from .latents import NO_CODES, ClassCodes, LatentStream, NoLatent, VectorLatent, latent_kind
from .manifest import GraphRecord, Kind
from .notices import notice

LabelInput = LabelLike | Label | Sequence[LabelLike | Label]
ImageLike = str | Path | Image.Image | np.ndarray
ImageInput = ImageLike | Sequence[ImageLike]
ASPECT_TOLERANCE = 0.01
"""Relative aspect-ratio difference up to which ``translate`` resizes its input (label maps:
:data:`sdk.intake.ASPECT_TOLERANCE`)."""
TASK_USAGE = {"semantic": ("s(label, seed=0)", "python -m sdk synthesize --label PNG"),
              "unconditional": ("s(seed=0, n=4)", "python -m sdk sample --seed S"),
              "image2image": ("s.translate(image)", "python -m sdk translate --image IMG")}
"""How each task's models are called, for the error a call of another task gets."""
MAX_AUTO_BATCH = 8
"""Largest batch the default ``batch_size`` picks (more buys little on a CPU)."""
MIN_PER_IMAGE_BYTES = 16 << 20
"""Floor of the measured memory per image (a warm process may show no growth at all)."""
WHY_NO_CODES = {
    "dpsims": ("{name} cannot redraw one class: DP-SIMS draws one global z, which an MLP maps to tokens that "
               "every pixel attends to (cross-attention at 1/16 and 1/32 scale) before self-attention mixes all "
               "positions, so no part of its noise belongs to a region; use an OASIS or GroupDNet bundle"),
}
"""Families whose single latent admits no per-class form, and why (one line each)."""

_PER_CLASS = "per-class codes are GroupDNet's and OASIS' (PerClassLabelToImage)"
_SAMPLING = "it is label-to-image and unconditional models' (LabelToImage, Unconditional)"
CALLS: dict[str, str] = {
    **dict.fromkeys(("sample_codes", "codes_shape", "resample", "resample_codes", "interpolate_classes", "mix",
                     "morph", "encode"), _PER_CLASS),
    "encode_style": "a style encoder (one vector per image) is LabelToImage's: -vae SPADE presets",
    "synthesize_many": "it is label-to-image models' (LabelToImage)",
    "read_label": "it is label-to-image models' (LabelToImage; deprecated: use s.intake.read)",
    "stream": _SAMPLING, "variations": _SAMPLING, "interpolate": _SAMPLING,
    "translate": "translate is image-to-image models' (ImageToImage: MSG U-Net)",
    "editor": "editing a label map is label-to-image models' (LabelToImage, PerClassLabelToImage)",
}
"""Every public call some pipeline has -> who has it: what an AttributeError for it says on
a pipeline that does not have it."""


class NotThisModel(SDKError, AttributeError):
    """A call this model's pipeline does not have: an :class:`AttributeError` (``hasattr`` is
    False) whose one line names the pipeline that has it, and an SDKError (the CLI's one line)."""


class _NotHere:
    """Marks a call a subclass does not have although its parent does (the per-class models'
    ``encode_style``): looking it up fails, so the pipeline's ``__getattr__`` explains."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        raise AttributeError(self.name)


class _PipelineType(type):
    """Lists a pipeline's own calls only: ``dir()`` and ``help()`` leave out :class:`_NotHere`."""

    def __dir__(cls) -> list[str]:
        return [n for n in super().__dir__() if not _not_here(cls, n)]


def _not_here(cls: type, name: str) -> bool:
    """Whether ``name`` resolves to a :class:`_NotHere` on ``cls`` (the nearest definition wins)."""
    owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
    return owner is not None and isinstance(owner.__dict__[name], _NotHere)


@dataclass
class _Request:
    """One synthesis call, checked: label inputs (read per batch), samples per label map,
    the image count and the latent stream."""

    items: list[Any]
    instances: list[Any] | None
    n: int
    count: int
    batched: bool
    latents: LatentStream


def pipeline_class(bundle: Bundle) -> type["Synthesizer"]:
    """The pipeline class for ``bundle``: by its task, then (label-to-image) its latent kind.

    Pipelines register what they serve when defined (``class X(..., serves=(task, latent))``),
    so this module needs no import of the ones built on it (``sdk.per_class``: imported with
    ``sdk``)."""
    codes = isinstance(latent_kind(bundle.name, bundle.graph("model").inputs), ClassCodes)
    served = Synthesizer._served
    return served.get((bundle.task, "codes" if codes else "any")) or served[(bundle.task, "any")]


def _pipeline_of(cls: type) -> type | None:
    """The pipeline a class is (itself, or the one a user's subclass extends): the first of
    the pipeline classes in its MRO."""
    pipelines = set(Synthesizer._served.values())
    return next((k for k in cls.__mro__ if k in pipelines), None)


class Synthesizer(metaclass=_PipelineType):
    """Runs a bundle; the base of every pipeline, and where they are opened from.

    ``Synthesizer.from_pretrained(path)`` and ``Synthesizer(Bundle(path))`` both return the
    pipeline the bundle needs (:func:`pipeline_class`): existing code that constructs
    ``Synthesizer(...)`` keeps working and gets the calls of its model. What every pipeline
    shares lives here: the bundle, its runners, the label intake, batching, output conversion.
    """

    _served: dict[tuple[str, str], type["Synthesizer"]] = {}
    """(task, latent: "codes" or "any") -> the pipeline class that serves such bundles."""

    def __init_subclass__(cls, *, serves: tuple[str, str] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if serves is not None:
            Synthesizer._served[serves] = cls

    def __new__(cls, bundle: Bundle | None = None, *args: Any, **kwargs: Any) -> "Synthesizer":
        if cls is Synthesizer and isinstance(bundle, Bundle):
            cls = pipeline_class(bundle)
        return super().__new__(cls)

    def __init__(self, bundle: Bundle, backend: str = "auto", *, label_format: str = "dataset",
                 labels: str | None = None, **backend_options: Any) -> None:
        wanted = pipeline_class(bundle)
        if _pipeline_of(type(self)) is not wanted:
            raise SDKError(f"{bundle.name} is {_article(bundle.task)} {bundle.task} model, which {type(self).__name__} "
                           f"does not run: open it with Synthesizer.from_pretrained, which gives its pipeline, "
                           f"{wanted.__name__}")
        self.bundle = bundle
        self.intake = LabelIntake(bundle, label_format, labels=labels)
        """Reads every label map of this model (:mod:`sdk.intake`); doors read through it too."""
        self.label_format = self.intake.label_format
        """``"dataset"``: label files (and arrays) are the dataset's, mapped through
        ``self.convention``; ``"ids"``: they hold model class ids already."""
        self.convention = self.intake.convention
        self.backend = resolve_backend(bundle, backend)
        check_options(self.backend, backend_options)  # a misspelt option fails here, not at the first call
        self._options = backend_options
        self._runners: dict[str, Runner] = {}
        self.latents = latent_kind(bundle.name, bundle.graph("model").inputs)
        """Where latents come from (:mod:`sdk.latents`): none, a vector, or per-class codes."""
        self._batch_size: int | None = None  # the default batch size, chosen on the first large request
        self.runner("model")  # load now: a bad option or a missing provider fails here, not at the first call

    # -- loading and saving -----------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, backend: str = "auto", *, verify: bool = True,
                        label_format: str = "dataset", labels: str | None = None,
                        **backend_options: Any) -> "Synthesizer":
        """Open a bundle folder as the pipeline it needs (module docstring). ``verify``
        checks every file's sha256 against the manifest.

        ``label_format``: ``"dataset"`` (default) reads label maps as the dataset's annotation
        files, mapped to model ids by the bundle's convention (COCO-Stuff 255 -> 182 for
        SPADE, +1 for OASIS...; ``python -m sdk info`` shows it); ``"ids"`` takes them as
        model class ids already (arrays from your own code). ``labels=`` (and its ``"model"``)
        are the old names: deprecated, they go in the next version.

        ``backend``: ``auto`` (fastest available here) or one of
        :func:`sdk.backends.available_backends`; ``backend_options`` go to its runner and
        are checked now (e.g. onnxruntime: ``threads``, ``providers``; torch: ``device``,
        ``precision``, ``compile``).
        """
        return cls(Bundle(path, verify=verify), backend, label_format=label_format, labels=labels, **backend_options)

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

    def close(self) -> None:
        """Free the runners (sessions, device memory)."""
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()

    def __enter__(self) -> "Synthesizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def info(self) -> dict[str, Any]:
        m = self.bundle.manifest.to_json()
        return {k: m.get(k) for k in ("name", "family", "task", "resolution", "label", "graphs", "tools")}

    @property
    def labels(self) -> str:
        """Deprecated: :attr:`label_format` (this gives the old values, ``"model"`` for ``"ids"``)."""
        deprecated("Synthesizer.labels is deprecated: use .label_format ('dataset' or 'ids')")
        return "model" if self.label_format == "ids" else self.label_format

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.bundle.name!r}, backend={self.backend!r}, path='{self.bundle.path}')"

    # -- what this model takes ----------------------------------------------------------
    @property
    def has_codes(self) -> bool:
        """Whether the model takes per-class codes (GroupDNet, OASIS): a
        ``PerClassLabelToImage``, with resample, interpolate per class, ``codes=`` and
        ``sample_codes``."""
        return isinstance(self.latents, ClassCodes)

    @property
    def no_codes_reason(self) -> str | None:
        """None where per-class control applies; else the one line saying why not (apps show
        it next to a disabled control; the per-class calls' AttributeError ends with it)."""
        if self.has_codes:
            return None
        b = self.bundle
        if b.family in WHY_NO_CODES:
            return WHY_NO_CODES[b.family].format(name=b.name)
        if b.family == "oasis":  # exported before OASIS took its noise per class
            return (f"{b.name} was exported before OASIS took its noise per class (its graph takes one z); "
                    f"re-export it from its own weights to redraw one class: python -m export bundle --model "
                    f"{b.name} --checkpoint {b.path / 'weights.safetensors'} --out NEW_FOLDER")
        return NO_CODES.format(name=b.name)

    def __getattr__(self, name: str) -> Any:
        """Only for names not found: a call another pipeline has says which one has it."""
        if name not in CALLS or "bundle" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise NotThisModel(f"{type(self).__name__!r} object has no attribute {name!r}: {CALLS[name]}; "
                           f"{self._why_not(name)}")

    def __dir__(self) -> list[str]:
        return [n for n in super().__dir__() if not _not_here(type(self), n)]

    def _why_not(self, name: str) -> str:
        """The second half of a missing call's message: why this bundle has it not."""
        if CALLS[name] == _PER_CLASS and self.bundle.task == "semantic":
            return self.no_codes_reason or ""
        if name == "encode_style" and self.has_codes:
            return f"{self.bundle.name} encodes per class: use s.encode(image, label) -> codes (C, D)"
        return self._usage()

    def _usage(self) -> str:
        """This model's task and how it is called, in Python and on the command line."""
        task = self.bundle.task
        python, cli = TASK_USAGE[task]
        return f"{self.bundle.name} is {_article(task)} {task} model: call it as {python} (CLI: `{cli}`)"

    def _wrong_task(self, what: str) -> str:
        """The one message for an argument this model's task does not take: how to call it."""
        task = self.bundle.task
        python, cli = TASK_USAGE[task]
        return f"{self.bundle.name} is {_article(task)} {task} model that {what}: call it as {python} (CLI: `{cli}`)"

    # -- steps ------------------------------------------------------------------------
    @property
    def _model(self) -> GraphRecord:
        """The synthesis graph's record (typed inputs and outputs)."""
        return self.bundle.graph("model")

    def _image_outputs(self) -> list[str]:
        """Names of the model graph's 8-bit image outputs, largest (full size) first."""
        outs = self._model.outputs_of(Kind.IMAGE_U8)
        return [o.name for o in sorted(outs, key=lambda o: -o.shape[1] * o.shape[2])]

    def _request(self, label: LabelInput | None, instance: LabelInput | None, n: Any, **latent: Any) -> "_Request":
        """Step 1: check the request's arguments (label maps are read per batch, later)."""
        b = self.bundle
        n = check_count(n)
        if b.task == "unconditional":
            if label is not None or instance is not None:
                raise LabelError(self._wrong_task("takes no label map"))
            items: list[Any] = []
            batched = False
        elif label is None:
            raise LabelError(self._wrong_task("needs a label map"))
        else:
            batched = is_batch(label)
            items = list(label) if batched else [label]
            if not items:
                raise LabelError("empty list of label maps; give at least one")
        inst_items = None
        if instance is not None:
            self.intake.check_takes_instances()
            inst_items = list(instance) if isinstance(instance, (list, tuple)) else [instance]
            if len(inst_items) != len(items):
                raise LabelError(f"got {len(inst_items)} instance maps for {len(items)} label maps")
        if n > 1 and isinstance(self.latents, NoLatent):
            raise SDKError(f"{b.name} is deterministic given its label map: n={n} would give {n} identical "
                           f"images; use a model with a latent (e.g. a -vae SPADE preset) for variations")
        count = max(len(items), 1) * n
        latents = self.latents.stream(count, encode_style=self._style_code, **latent)
        return _Request(items, inst_items, n, count, batched, latents)

    def _run(self, request: "_Request", output: str, batch_size: int | None,
             progress: bool | None) -> Iterator[Any]:
        """Steps 2-5 per batch: read the label maps, feed ids and edges, take the latents,
        run (fetching the 8-bit image, or the float one), post-process."""
        name = self._image_outputs()[0]
        fetch = name if output != "float" else self._float_name(name)
        bar = progress_bar(request.count, progress, self.bundle.name)
        done = 0
        try:
            while done < request.count:
                size = self._next_batch(request.count - done, done, batch_size)
                feeds = self._label_feeds(request, done, size)
                feeds.update(request.latents.take(size))
                probe = batch_size is None and self._batch_size is None and request.count > 1
                before = memory.process_bytes() if probe else None
                out = self._run_graph(feeds, fetch, size)
                if probe:
                    self._size_batches(before, memory.process_bytes())
                self._warn_random_weights()
                done += size
                bar.update(size)  # before yielding: a consumer may stop after the last image
                for x in out:
                    yield to_output(x, output)
        finally:
            bar.close()

    def _next_batch(self, left: int, done: int, batch_size: int | None) -> int:
        """Images in the next runner call. Given ``batch_size``, that many. By default a
        request of several images runs its first image alone -- on the first such request
        that run measures the memory one image takes (its image is kept) -- and the rest in
        batches of :attr:`_batch_size`, fixed once per Synthesizer: the same call runs the
        same batches, so it gives the same images (batches of other sizes may round a level
        apart)."""
        if batch_size is not None:
            return min(batch_size, left)
        if done == 0 or self._batch_size is None:
            return 1
        return min(self._batch_size, left)

    def _size_batches(self, before: int | None, after: int | None) -> None:
        """The default batch: as many images as fit in half the free memory (one image took
        ``after - before`` bytes), at most ``MAX_AUTO_BATCH``."""
        grown = 0 if before is None or after is None else after - before
        self._batch_size = memory.fitting_batch(max(grown, MIN_PER_IMAGE_BYTES), MAX_AUTO_BATCH)

    def _label_feeds(self, request: "_Request", start: int, size: int) -> dict[str, np.ndarray]:
        """Class ids (int32) and instance edges (uint8) of images ``start .. start+size-1``:
        each label map read once by the intake, its int32 ids fed as they are (stacked for
        a batch; a batch of one is a view, no copy)."""
        if not request.items:
            return {}
        index = [i // request.n for i in range(start, start + size)]
        read: dict[int, Label] = {}
        for i in sorted(set(index)):
            what = f"label[{i}]" if request.batched else "label"
            inst = None if request.instances is None else request.instances[i]
            read[i] = self._check_read(self.intake.read(request.items[i], inst, what=what), what)
        feeds: dict[str, np.ndarray] = {}
        for kind, part in ((Kind.LABEL, "ids"), (Kind.INSTANCE_EDGE, "edges")):
            spec = self._model.input_of(kind)
            if spec is not None:
                arrays = [getattr(read[i], part) for i in index]
                feeds[spec.name] = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
        return feeds

    def _check_read(self, label: Label, what: str) -> Label:
        """A :class:`Label` made elsewhere (another model's intake, by hand) must fit this model."""
        h, w = self.bundle.resolution
        if label.ids.shape != (h, w) or label.ids.dtype != np.int32:
            raise LabelError(f"{what} was read as {label.ids.shape} {label.ids.dtype} ids, but "
                             f"{self.bundle.name} takes ({h}, {w}) int32: read it with this model's s.intake")
        if (label.edges is None) == bool(self.intake.wants_edges):
            raise LabelError(f"{what} was read for a model {'without' if label.edges is None else 'with'} "
                             f"instance edges; read it with this model's s.intake")
        return label

    def _run_graph(self, feeds: dict[str, np.ndarray], fetch: str, size: int) -> np.ndarray:
        try:
            return self.runner("model").run(feeds, outputs=[fetch])[fetch]
        except MemoryError as exc:
            raise BackendError(f"out of memory at batch {size}: pass a smaller batch_size "
                               f"(e.g. {max(size // 2, 1)})") from exc

    def _warn_random_weights(self) -> None:
        """Once per process and bundle, with the first images: they come from random weights."""
        if self.bundle.random_weights:
            notice(f"{self.bundle.name} has random weights ({self.bundle.manifest.weights['source']}): its "
                   f"images are noise-like; export a trained or official checkpoint for real images")

    def _style_code(self, image: Any) -> np.ndarray:
        """The encoder mean (D,) of a style image (``style=``), or why this model has none."""
        if not self.bundle.has_graph("encoder"):
            raise SDKError(f"{self.bundle.name} has no style encoder; export a -vae preset for style-guided synthesis")
        img = read_image(image, self.bundle.resolution, "style image")
        return self.runner("encoder").run({"image": img[None]})["mu"][0]

    def _float_name(self, u8_name: str) -> str:
        return next(o.attrs["of"] for o in self._model.outputs if o.name == u8_name)




class _Sampler(Synthesizer):
    """What label-to-image and unconditional pipelines share: images from latents (and label
    maps), in batches, as one call or a stream; variations and interpolations of a seed."""

    def __call__(self, label: LabelInput | None = None, *, seed: int | None = None,
                 z: np.ndarray | None = None, style: Any = None, instance: LabelInput | None = None,
                 n: int = 1, codes: np.ndarray | None = None, output: str = "pil",
                 batch_size: int | None = None, progress: bool | None = None) -> Any:
        """Synthesize images.

        Args:
            label: label map (index/grayscale/RGB-palette PNG path or bytes, PIL image, (H, W)
                integer array, or a :class:`~sdk.intake.Label` read by ``s.intake``), or a list
                of them for a batch. Unconditional models take none.
            seed: seeds the latent (an integer >= 0); the same seed gives the same image.
            z: explicit latent, (D,) or (N, D); overrides ``seed``.
            codes: per-class codes (C, D) or (N, C, D) of models with per-class codes
                (GroupDNet; see :mod:`sdk.per_class`); overrides ``seed``, which otherwise
                draws random codes for every class.
            style: reference image whose style (encoder mean) is used (models with an encoder).
            instance: instance-id map(s) for models that take instance edges; when omitted,
                edges of the label map itself are used.
            n: samples per label map (models with a latent; a deterministic model refuses n > 1).
            output: ``"pil"`` (default), ``"uint8"`` ((H, W, 3) arrays, stacked to (N, H, W, 3)
                for a batch) or ``"float"`` ((3, H, W) in [-1, 1], stacked to (N, 3, H, W)).
            batch_size: images per graph run; default chosen from the memory one image
                takes and what the machine has free (see :meth:`stream` for large requests).
            progress: show a progress bar (default: when stderr is a terminal and the
                request takes more than one run).

        Returns:
            One image, or a list (an array for ``uint8`` / ``float``) when a batch of labels
            or ``n > 1`` was given. A request whose images would take more than half the free
            memory is refused: :meth:`stream` yields them a batch at a time.
        """
        request = self._request(label, instance, n, seed=seed, z=z, style=style, codes=codes)
        self._check_fits_in_memory(request, check_output(output))
        images = list(self._run(request, output, check_batch_size(batch_size), progress))
        single = not request.batched and request.n == 1
        if output == "pil":
            return images[0] if single else images
        return images[0] if single else np.stack(images)

    def _check_fits_in_memory(self, request: "_Request", output: str) -> None:
        """A call returns all its images at once: refuse one whose images would take more than
        half the free memory (the OOM killer ends the process with no message otherwise)."""
        free = memory.available_bytes()
        h, w = self.bundle.resolution
        per_image = 3 * h * w * (4 if output == "float" else 1) * (1 if output == "pil" else 2)  # arrays: np.stack copies
        if free is None or request.count * per_image <= free // 2:
            return
        raise SDKError(f"{request.count} images of {h}x{w} would take {request.count * per_image / 2**30:.1f} GiB, "
                       f"more than half of the {free / 2**30:.1f} GiB free; take them a batch at a time "
                       f"with s.stream(...) (the CLI writes each image as it comes)")

    def stream(self, label: LabelInput | None = None, *, seed: int | None = None, z: np.ndarray | None = None,
               style: Any = None, instance: LabelInput | None = None, n: int = 1,
               codes: np.ndarray | None = None, output: str = "pil", batch_size: int | None = None,
               progress: bool | None = None) -> Iterator[Any]:
        """Like calling the synthesizer, but yields the images one by one as their batch
        finishes, reading label files as it goes: memory stays bounded whatever ``n`` and
        the number of label maps (the CLI writes each image as it comes). The images are
        the same as those of one call with the same arguments.
        """
        request = self._request(label, instance, n, seed=seed, z=z, style=style, codes=codes)
        return self._run(request, check_output(output), check_batch_size(batch_size), progress)

    def variations(self, label: LabelLike | None = None, n: int = 4, seed: int = 0) -> list[Image.Image]:
        """``n`` diverse images for one label map (different latents from one seed).

        Unconditional models take no label: ``s.variations(n=4, seed=0)``.
        """
        if isinstance(self.latents, NoLatent):
            raise SDKError(f"{self.bundle.name} takes no latent, so variations has nothing to vary; "
                           f"use a model with a latent (e.g. a -vae SPADE preset)")
        n = check_count(n)
        return self(label, seed=seed, n=n) if n > 1 else [self(label, seed=seed)]

    def interpolate(self, label: LabelLike | None = None, *, seed_a: int, seed_b: int,
                    steps: int = 8, classes: Iterable[int | str] | None = None) -> list[Image.Image]:
        """Frames along the spherical interpolation between the latents of two seeds.

        The first frame equals ``s(label, seed=seed_a)``, the last ``s(label, seed=seed_b)``
        (for "sphere" latents too: slerp keeps unit vectors on the sphere). Unconditional
        models take no label: ``s.interpolate(seed_a=0, seed_b=1, steps=8)``.

        ``classes`` moves only those classes: per-class models (``PerClassLabelToImage``)
        take it; here it is the one line saying why this model cannot.
        """
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise SDKError(f"steps must be >= 2 (the two end points, a whole number), got {steps!r}")
        if classes is not None:
            raise SDKError(self.no_codes_reason)
        if not isinstance(self.latents, VectorLatent):
            raise SDKError(f"{self.bundle.name} takes no latent vector, so interpolate has nothing to vary; "
                           f"use a model with a latent (e.g. a -vae SPADE preset)")
        za = self.latents.sample(check_seed(seed_a, "seed_a"))[0]
        zb = self.latents.sample(check_seed(seed_b, "seed_b"))[0]
        zs = np.stack([slerp(za, zb, t) for t in np.linspace(0.0, 1.0, steps)])
        if label is None:
            out = self(z=zs, n=steps)
        else:
            out = self([label] * steps, z=zs)  # the same label map at every step
        return out if isinstance(out, list) else [out]


class LabelToImage(_Sampler, serves=("semantic", "any")):
    """Label map (and optional style, instance map, seed) -> images: SPADE (-vae presets with
    a style encoder), pix2pixHD, DP-SIMS, and OASIS bundles exported with one z."""

    def synthesize_many(self, labels: Sequence[LabelLike], seeds: Sequence[int | None],
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
        parts = [self.latents.stream(1, seed=k, style=st, encode_style=self._style_code).take(1)
                 for k, st in zip(seeds, styles)]
        if not parts[0]:  # no latent input: the seeds change nothing
            return self(labels, batch_size=len(labels))
        name = next(iter(parts[0]))
        stacked = np.concatenate([p[name] for p in parts])
        return self(labels, batch_size=len(labels), **{"codes" if self.has_codes else "z": stacked})

    def editor(self, label: LabelLike | Label, *, seed: int | None = None, instance: LabelLike | None = None,
               codes: np.ndarray | None = None, z: np.ndarray | None = None, style: Any = None,
               tol: float = 0.0) -> Editor:
        """An editing session on ``label``: ``with s.editor(label, seed=0) as ed: res = ed.update(new_label)``.

        The first (full) pass runs now (``ed.image``); each ``ed.update(label, instance=None)``
        returns an :class:`~sdk.editor.EditResult` (``image``, ``incremental``, ``reason``,
        ``changed``, ``ms``, ``recomputed``). The latent (``seed``, ``z``, ``style``, or per-class
        ``codes``, as in a call) is drawn once and kept, so only the painted pixels change
        the image. On the torch backend a local generator (SPADE, OASIS, GroupDNet) redoes
        only the work an edit reaches -- the same image as a full pass within 1 level of 8
        bits; other backends and families run a full pass per update and ``ed.reason`` says
        why. Label maps go through ``s.intake`` as in every call; one map size per editor.

        ``tol`` (default 0: exact) trades exactness for speed: with ``tol > 0`` the main
        path's convolutions redo the tiles the stroke reaches and, beyond them, only where
        their input moved by more than ``tol`` times its largest magnitude; elsewhere they
        keep their last output. An update then redoes less (``main_recomputed``) and its
        image approximates the full pass's, for previewing strokes as they are painted
        (quality and savings per ``tol``: ``benchmarks/edit_preview.py``). The error does
        not pile up over strokes; an exact editor (the default) gives the final image.
        """
        return Editor(self, label, seed=seed, instance=instance, codes=codes, z=z, style=style, tol=tol)

    def encode_style(self, image: Any) -> np.ndarray:
        """The style code (encoder mean, shape (D,)) of a reference image: ``s(label,
        style=image)`` uses it (models with a style encoder: -vae SPADE presets)."""
        return self._style_code(image)

    def read_label(self, x: LabelLike, what: str = "label") -> np.ndarray:
        """Deprecated (goes in the next version): ``s.intake.read(x).ids``, the one reader
        of label maps (:meth:`sdk.intake.LabelIntake.read`)."""
        deprecated("Synthesizer.read_label is deprecated: use s.intake.read(x).ids (the one label reader)")
        return self.intake.read(x, what=what, regions_as_edges=True).ids


class Unconditional(_Sampler, serves=("unconditional", "any")):
    """Seed -> images (ProGAN): ``s(seed=0, n=4)``, ``variations``, ``interpolate``."""


class ImageToImage(Synthesizer, serves=("image2image", "any")):
    """RGB image -> RGB image (MSG U-Net): ``s(image)``, which is ``s.translate(image)``."""

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
        spec = self._model.input_of(Kind.IMAGE)
        batched = isinstance(image, (list, tuple))
        items = list(image) if batched else [image]
        if not items:
            raise SDKError("empty list of images; give at least one")
        # 2. decode and resize
        feeds = {spec.name: np.stack([self._read_input_image(x, f"image[{i}]" if batched else "image")
                                         for i, x in enumerate(items)])}
        # 3. run, fetching only the 8-bit images
        names = self._image_outputs() if all_scales else self._image_outputs()[:1]
        out = self.runner("model").run(feeds, outputs=names)
        self._warn_random_weights()
        # 4. post-process
        float_name = {o.name: o.attrs["of"] for o in self._model.outputs_of(Kind.IMAGE_U8)}
        results = [{float_name[k]: to_image(out[k][i]) for k in names} for i in range(len(items))]
        flat = results if all_scales else [r[float_name[names[0]]] for r in results]
        return flat if batched else flat[0]

    def __call__(self, image: ImageInput, *, all_scales: bool = False
                 ) -> Image.Image | dict[str, Image.Image] | list[Image.Image] | list[dict[str, Image.Image]]:
        """``s.translate(image, all_scales=...)``: an image-to-image pipeline's call."""
        return self.translate(image, all_scales=all_scales)

    def _read_input_image(self, x: ImageLike, what: str) -> np.ndarray:
        """An RGB image -> (3, H, W) in [-1, 1] at the bundle resolution; same aspect ratio only."""
        obj = open_image(x, what, lossless=False)
        h, w = self.bundle.resolution
        if isinstance(obj, np.ndarray) and obj.ndim == 2:
            raise SDKError(f"{what} is an (H, W) array, but {self.bundle.name} is an image2image model: it takes "
                           f"an RGB image ((H, W, 3) uint8), not a label map")
        if isinstance(obj, np.ndarray) and obj.ndim != 3:
            return read_image(obj, (h, w), what)  # raises its (H, W, 3) uint8 message
        h_in, w_in = obj.shape[:2] if isinstance(obj, np.ndarray) else obj.size[::-1]
        if not h_in or not w_in or abs((w_in / h_in) / (w / h) - 1) > ASPECT_TOLERANCE:
            raise SDKError(f"{what} is {h_in}x{w_in} (HxW) but {self.bundle.name} takes {h}x{w}: "
                           f"aspect ratios differ, and resizing would distort it. Crop or pad it to "
                           f"W/H = {w / h:.3g} first")
        return read_image(obj, (h, w), what)



def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def to_output(x: np.ndarray, output: str) -> Any:
    """One image of a graph output as the caller asked: PIL, (H, W, 3) uint8 or (3, H, W) float."""
    if output == "pil":
        return to_image(x)
    return np.array(x)  # a copy: the batch array is not kept alive by one image


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool | None, what: str) -> Any:
    """A tqdm bar over ``total`` images when asked, or by default when stderr is a terminal
    and there is more than one image; a no-op otherwise (or without tqdm)."""
    if enabled is False or (enabled is None and (total <= 1 or not sys.stderr.isatty())):
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=what, unit="img")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (falls back to linear for nearly parallel vectors)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.clip(np.dot(a.ravel() / na, b.ravel() / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if omega < 1e-4:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


__all__ = ["CALLS", "ImageToImage", "LabelToImage", "NotThisModel", "Synthesizer", "Unconditional", "pipeline_class",
           "slerp"]
