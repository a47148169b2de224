"""Editing sessions: re-synthesize a label map as it is painted, stroke by stroke.

>>> with s.editor("samples/ade_1_label.png", seed=0) as ed:
...     first = ed.image                      # the full pass of the starting map
...     res = ed.update(painted_ids)          # after a stroke
...     res.image, res.incremental, res.ms

An :class:`Editor` keeps the session's latent (seed, ``z`` or per-class ``codes``: the same
for every update, so only the painted pixels change the image) and the last label map.
On the torch backend and a local generator (SPADE, OASIS, GroupDNet) each update redoes
only the work the changed pixels reach (``sdk.train.deploy.incremental``, through the
runner's optional ``edit_session``): the same image as a full pass within 1 level of 8 bits.
Elsewhere every update is a full pass and :attr:`Editor.reason` says why, in one line.
``tol > 0`` asks for a preview instead (torch backend, local generators): the main path's
convolutions also keep their output where their input moved by less than ``tol`` of its
range, so an update redoes less and its image is no longer the full pass's
(``sdk.train.deploy.preview``; quality per ``tol`` in ``benchmarks/edit_preview.py``).

Every label map goes through the bundle's intake (``s.intake``), as at every other door:
a path, PNG bytes, a PIL image, an (H, W) array, or a :class:`~sdk.intake.Label` already
read (the app's canvas). An editor edits one map size: a map of another size than the
first is refused (open a new editor).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from . import labels as L
from .errors import LabelError, SDKError
from .inputs import check_tol
from .intake import Label
from .manifest import Kind


@dataclass(frozen=True)
class EditResult:
    """One update of an :class:`Editor`.

    Attributes:
        image: the synthesized image (PIL, RGB, the model's resolution).
        incremental: True when only the work the edit reaches was redone; False for a
            full pass (the first one, a backend or model that cannot, an edit too large).
        reason: why this update was a full pass, one line ('' when incremental).
        changed: fraction of the label map's pixels (ids or instance edges) that differ
            from the previous update (0.0 .. 1.0).
        ms: wall time of the update in milliseconds, label read to image.
        recomputed: fraction of the label branches' work redone (1.0 for a full pass).
        main_recomputed: fraction of the main path's multiply-adds redone (1.0 unless the
            editor has a preview ``tol``).
    """

    image: Image.Image
    incremental: bool
    reason: str
    changed: float
    ms: float
    recomputed: float = 1.0
    main_recomputed: float = 1.0


class Editor:
    """An editing session on one label map; make it with :meth:`Synthesizer.editor`.

    ``update(label, instance=None) -> EditResult``; ``image`` is the last image, ``result``
    the last :class:`EditResult`, ``reason`` why updates are full passes (None when they
    are incremental). A context manager: leaving it frees the session's caches.

    ``synth`` is the label-to-image pipeline that opened it (typed ``Any``: this module sits
    below ``sdk.synthesizer``, which imports it).
    """

    def __init__(self, synth: Any, label: Any, *, seed: int | None = None, instance: Any = None,
                 codes: np.ndarray | None = None, z: np.ndarray | None = None, style: Any = None,
                 tol: float = 0.0) -> None:
        start = time.perf_counter()
        tol = check_tol(tol)  # here, not only in the torch session: other backends ignore it
        self._synth = synth
        if synth.bundle.task != "semantic":
            raise SDKError(synth._wrong_task("takes no label map, so there is nothing to edit"))
        self._size: tuple[int, int] | None = None
        read = self._read(label, instance)
        latent = synth.latents.stream(1, seed=seed, z=z, style=style, codes=codes, encode_style=synth._style_code)
        self._latents = latent.take(1)
        self._fetch = synth._image_outputs()[0]
        runner = synth.runner("model")
        start_session = getattr(runner, "edit_session", None)  # optional: the torch runner has it
        feeds = self._feeds(read)
        self._session: Any = None
        if start_session is None:
            self.reason: str | None = (f"incremental updates need the torch runner (backend='torch'); "
                                       f"{synth.backend} runs full passes")
            image = runner.run(feeds, outputs=[self._fetch])[self._fetch][0]
        else:
            self._session = start_session(feeds, outputs=[self._fetch], tol=tol)
            self.reason = self._session.reason
            image = self._session.last[self._fetch][0]
        self._last = read
        self.result = EditResult(L.to_image(image), False, "first pass of the session", 1.0,
                                 (time.perf_counter() - start) * 1e3)
        """The last :class:`EditResult` (the first pass's, until the first update)."""

    @property
    def image(self) -> Image.Image:
        """The last synthesized image."""
        return self.result.image

    def update(self, label: Any, instance: Any = None) -> EditResult:
        """Synthesize the edited map ``label`` (and its instance map), against the last one.

        Returns the :class:`EditResult` (also kept as :attr:`result`). A map that fails the
        intake, or of another size than the session's first, raises one
        :class:`~sdk.errors.LabelError` line and leaves the session as it was.
        """
        if self._synth is None:
            raise SDKError("this editor is closed; open a new one with s.editor(label)")
        start = time.perf_counter()
        read = self._read(label, instance)
        changed = _changed(self._last, read)
        feeds = self._feeds(read)
        if self._session is None:
            image = self._synth.runner("model").run(feeds, outputs=[self._fetch])[self._fetch][0]
            stats = {"incremental": False, "reason": self.reason, "recomputed": 1.0}
        else:
            out, stats = self._session.update(feeds)
            image = out[self._fetch][0]
        self._last = read
        self.result = EditResult(L.to_image(image), bool(stats["incremental"]), str(stats["reason"] or ""),
                                 changed, (time.perf_counter() - start) * 1e3, float(stats["recomputed"]),
                                 float(stats.get("main_recomputed", 1.0)))
        return self.result

    def close(self) -> None:
        """Free the session's caches; the editor cannot update afterwards."""
        if self._session is not None:
            self._session.close()
        self._session = None
        self._synth = None

    def __enter__(self) -> "Editor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- steps --------------------------------------------------------------------------
    def _read(self, label: Any, instance: Any) -> Label:
        """The map through the bundle's intake, after checking its size against the first."""
        synth = self._synth
        size = _input_size(label)
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise LabelError(f"label is {size[0]}x{size[1]} but this editor started from a {self._size[0]}x"
                             f"{self._size[1]} map; an editor edits one map size: open a new one with s.editor(label)")
        return synth._check_read(synth.intake.read(label, instance, what="label"), "label")

    def _feeds(self, read: Label) -> dict[str, np.ndarray]:
        feeds = dict(self._latents)
        for kind, part in ((Kind.LABEL, "ids"), (Kind.INSTANCE_EDGE, "edges")):
            spec = self._synth._model.input_of(kind)
            if spec is not None:
                feeds[spec.name] = getattr(read, part)[None]
        return feeds


def _input_size(label: Any) -> tuple[int, int]:
    """(H, W) of a label input as given (before the intake resizes it), from the header."""
    if isinstance(label, Label):
        return tuple(label.ids.shape)  # type: ignore[return-value]
    if isinstance(label, (list, tuple)):
        raise LabelError("an editor edits one label map; give one map, not a list")
    return L.MapSource(label, "label").shape


def _changed(old: Label, new: Label) -> float:
    """Fraction of pixels whose id (or instance edge) differs."""
    diff = old.ids != new.ids
    if old.edges is not None and new.edges is not None:
        diff |= old.edges != new.edges
    return float(diff.mean())


__all__ = ["EditResult", "Editor"]
