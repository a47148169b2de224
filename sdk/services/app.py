"""``python -m sdk app``: paint a label map in the browser and watch the image change.

A Gradio page in the spirit of the SPADE authors' GauGAN demo: a canvas at the model's
resolution showing the label map in the bundle's palette, a class picker (names from
the manifest, ``class i`` where a bundle has none) that sets the brush colour, brush size,
seed, a style image where the model has a style encoder, an instance map where the model
was trained with instance edges, and, where the model takes per-class codes (GroupDNet,
OASIS), a "redraw this class" control; a bundle without them gets one line saying why
(:attr:`sdk.Synthesizer.no_codes_reason`). Every stroke re-synthesizes the image.

Each browser session paints through its own :class:`sdk.Editor` (``s.editor``): on the
torch runner and a local generator (SPADE, OASIS, GroupDNet) a stroke redoes only the work
it reaches, against that session's previous image; a new seed, style image, instance map or
redrawn class (a new latent) starts a new editor, a full pass. The status line gives each
update's time and whether it was incremental; the page says once why strokes are full passes
where they are (another backend, a family that is not local, ``--no-incremental``).

The page paints model class ids (:mod:`sdk.services.canvas`) and says so to the intake
(:meth:`sdk.LabelIntake.read_canvas`); a start map (``--label``, with ``--instance``) is a
dataset file read as every door reads it. Instance edges come from the start instance map
or an uploaded one, else from the painted regions' borders, and the page says which. The
painted map downloads as a PNG of model class ids (read it back with ``--label-format ids``).

:class:`AppSession` holds the callbacks (one method per page event); :func:`layout` builds
the page: ``_controls`` lays out the components, ``_wire`` connects their events to the
session. A new control is a method there, a component in ``_controls`` and a line in ``_wire``.
"""
from __future__ import annotations

import functools
import hashlib
import tempfile
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk import Editor, EditResult, Label, SDKError

from .canvas import CSS, PAINT_JS, Painter, ids_png, paint_html
from .common import open_synthesizer, png_bytes

KEEP_FILES = 16
"""Image and label files of the last strokes kept on disk (Gradio serves copies from its cache)."""

KEEP_SESSIONS = 4
"""Browser sessions whose editor is kept (least recently painted dropped first; its next
stroke is then a full pass). On the torch runner an editor holds every modulation layer's
cached scale and shift for its map: 309 MB for spade-ade20k at full size (FP32, measured
2026-12-02), so the count, not the visitors, bounds memory (4 x 309 MB here)."""

OFF_REASON = "incremental updates are off (--no-incremental)"

CAUSES = {"seed": "a new seed", "codes": "new per-class codes (a new seed or a redrawn class)",
          "style": "a new style image", "instance": "a new instance map"}
"""Why a session's editor is replaced (each part of what its latent and edges come from)."""


@dataclass
class _Edit:
    """One browser session's editor and what it was opened with (see :meth:`AppSession.latent_key`)."""

    editor: Editor
    key: dict[str, Any]


def _digest(x: Any) -> str | None:
    return None if x is None else hashlib.blake2b(np.ascontiguousarray(np.asarray(x)).tobytes(), digest_size=16).hexdigest()


def _percent(x: float) -> str:
    return "<0.1%" if 0 < x < 1e-3 else f"{x:.1%}"


class AppSession:
    """The app over one bundle: its start map, and the callbacks the page's events call.

    Per-browser state: the per-class codes and the uploaded instance map travel in the
    events' inputs; each session's :class:`sdk.Editor` (the last map and image, and on the
    torch runner each layer's cached label branch) is kept here, keyed by the browser
    session (``session``: Gradio's session hash), the ``KEEP_SESSIONS`` most recent only.
    A dict rather than a ``gr.State``: the count bounds memory (Gradio keeps a closed
    session's state for an hour), and the callbacks stay testable without a browser.
    Synthesis runs one update at a time (a lock): the sessions share the runner's module,
    whose layers an incremental update patches for its pass.

    ``incremental=False`` runs a plain call per stroke, as before editors (a baseline).
    """

    def __init__(self, bundle: str | Path, *, backend: str = "auto", threads: int | None = None,
                 label_format: str = "dataset", label: Any = None, instance: Any = None, seed: int = 0,
                 incremental: bool = True, labels: str | None = None) -> None:
        from sdk.conventions import check_label_format

        label_format = check_label_format(label_format, labels)  # labels=: the old name, deprecated
        self.s = open_synthesizer(bundle, backend=backend, threads=threads, label_format=label_format)
        self.painter = Painter(self.s)
        self.seed = seed
        h, w = self.s.bundle.resolution
        if label is not None:
            self.start = self.s.intake.read(label, instance, regions_as_edges=True)
        elif instance is not None:
            raise SDKError("an instance map needs its label map: give --label with --instance")
        else:
            blank = np.full((h, w), self.painter.paintable[0], np.int32)
            self.start = self.s.intake.read(blank, label_format="ids", regions_as_edges=True)
        self.out_dir = Path(tempfile.mkdtemp(prefix="sdk-app-"))
        self._written: deque[Path] = deque()
        self._edges: dict[str, np.ndarray] = {}  # uploaded instance map path -> its edges
        self.incremental = incremental
        self._edits: OrderedDict[str, _Edit] = OrderedDict()  # browser session -> its editor, oldest first
        self._lock = threading.Lock()
        self.full_reason = self._full_reason()
        """Why every stroke is a full pass here (None: strokes update incrementally)."""

    # -- reading what the page sends -----------------------------------------------------
    def label(self, value: Any, instance_file: Any = None) -> Label:
        """The map to synthesize: the start map before any stroke, else the canvas (model
        ids), with the uploaded instance map's edges, or the start map's, or the painted
        regions' borders."""
        edges = self._upload_edges(instance_file)
        if not value:
            if edges is None:
                return self.start
            return Label(self.start.ids, edges, "instance map")
        if edges is None and self.start.edges_from == "instance map":
            edges = self.start.edges
        return self.s.intake.read_canvas(value, edges)

    def _upload_edges(self, instance_file: Any) -> np.ndarray | None:
        if not instance_file:
            return None
        path = str(getattr(instance_file, "name", instance_file))
        if path not in self._edges:
            self._edges.clear()  # one upload at a time is plenty; the cache only saves re-reads per stroke
            self._edges[path] = self.s.intake.instance_edges(path)
        return self._edges[path]

    # -- synthesis --------------------------------------------------------------------
    def _full_reason(self) -> str | None:
        if not self.incremental:
            return OFF_REASON
        with self.s.editor(self.start, seed=self.seed) as probe:  # one full pass: the editor knows why
            return probe.reason

    def latent_key(self, seed: int, style: Any, codes: np.ndarray | None, instance_file: Any) -> dict[str, Any]:
        """What an editor's latent (the seed's, the style image's, or the per-class codes) and
        instance map come from: a stroke goes to the session's editor only when all match."""
        if self.painter.has_codes:
            key: dict[str, Any] = {"codes": _digest(codes)}
        elif style is not None and self.painter.takes_style:
            key = {"style": _digest(style)}
        else:
            key = {"seed": seed}
        key["instance"] = str(getattr(instance_file, "name", instance_file)) if instance_file else None
        return key

    def synthesize(self, label: Label, seed: int, style: Any, codes: np.ndarray | None,
                   instance_file: Any = None, session: str = "") -> EditResult:
        """The image of ``label`` for browser session ``session``: an update of its editor,
        or a new editor (a full pass) where there is none yet or its latent or instance
        map differs. The result's ``reason`` says why a full pass was one."""
        with self._lock:
            if not self.incremental:
                start = time.perf_counter()
                if self.painter.has_codes:
                    img = self.s(label, codes=codes)
                elif style is not None and self.painter.takes_style:
                    img = self.s(label, style=style)
                else:
                    img = self.s(label, seed=seed)
                return EditResult(img, False, OFF_REASON, float("nan"), (time.perf_counter() - start) * 1e3)
            key = self.latent_key(seed, style, codes, instance_file)
            edit = self._edits.get(session)
            if edit is not None and edit.key == key:
                self._edits.move_to_end(session)
                return edit.editor.update(label)
            cause = (f"a new page (or one idle while {KEEP_SESSIONS} others painted)" if edit is None
                     else next(CAUSES[k] for k in key if edit.key.get(k) != key[k]))
            if self.painter.has_codes:
                editor = self.s.editor(label, codes=codes)
            elif "style" in key:
                editor = self.s.editor(label, style=style)
            else:
                editor = self.s.editor(label, seed=seed)
            self._drop(session)
            self._edits[session] = _Edit(editor, key)
            while len(self._edits) > KEEP_SESSIONS:
                self._edits.popitem(last=False)[1].editor.close()
            first = editor.result
            return EditResult(first.image, False, editor.reason or cause, first.changed, first.ms)

    def forget(self, session: str) -> None:
        """Close ``session``'s editor (the page was closed), freeing its caches."""
        with self._lock:  # not while an update of it runs
            self._drop(session)

    def _drop(self, session: str) -> None:
        edit = self._edits.pop(session, None)
        if edit is not None:
            edit.editor.close()

    def render(self, value: Any, seed: float | None, style: Any, codes: Any, instance_file: Any = None,
               session: str = "") -> tuple[str, str, Any, str, list[str]]:
        """The synthesis callback of every stroke in browser session ``session``: (image
        file, painted label file, the codes used, status line, classes in the map). A map
        the intake refuses raises its one line (shown on the page as the error message)."""
        k = int(seed or 0)
        label = self.label(value, instance_file)
        if self.painter.has_codes and codes is None:
            codes = self.s.sample_codes(k)
        result = self.synthesize(label, k, style, codes, instance_file, session)
        img = result.image
        # New names per stroke (browsers cache by URL); zlib level 1 writes the image ~5x
        # faster than Gradio's own PNG encoding (level 6), which is most of a stroke's latency.
        stamp = time.monotonic_ns()
        image_path, label_path = self.out_dir / f"image_{stamp}.png", self.out_dir / f"label_{stamp}.png"
        image_path.write_bytes(png_bytes(img))
        label_path.write_bytes(ids_png(label.ids))
        self._written.extend([image_path, label_path])
        while len(self._written) > KEEP_FILES:
            self._written.popleft().unlink(missing_ok=True)
        return str(image_path), str(label_path), codes, self.status(label, result), self.classes(label)

    def status(self, label: Label, result: EditResult) -> str:
        """One line: the runner, the update's time and how it was made, the classes in the map."""
        names = self.painter.names
        classes = self.classes_of(label)
        how = (f"incremental ({_percent(result.changed)} of the map changed)" if result.incremental
               else f"full pass: {result.reason}")
        line = (f"{self.s.runner().describe()}: {result.ms:.0f} ms, {how}; classes in the map: "
                + ", ".join(names[c] for c in classes[:12]) + (" ..." if len(classes) > 12 else ""))
        if label.edges_from:
            line += f"; instance edges from the {label.edges_from}"
        return line

    @staticmethod
    def classes_of(label: Label) -> list[int]:
        return sorted(np.unique(label.ids).tolist())

    def classes(self, label: Label) -> list[str]:
        return [self.painter.choice(c) for c in self.classes_of(label)]

    def resample(self, value: Any, seed: float | None, codes: Any, choice: str | None, redraw_seed: float | None,
                 instance_file: Any = None, session: str = "") -> tuple[str, str, Any, str, list[str], int]:
        """Redraw one class (``choice``: "k: name"): its code becomes seed ``redraw_seed``'s
        (:meth:`sdk.PerClassLabelToImage.resample_codes`), every other class keeps its code.
        Returns :meth:`render`'s tuple and the next redraw seed (one up), so each click draws anew
        and a seed typed back gives its look again."""
        if not self.painter.has_codes:  # the page's line is the reason, not the pipeline's missing call
            raise SDKError(self.s.no_codes_reason)
        if not choice:
            raise SDKError("pick a class to redraw")
        k, r = int(str(choice).split(":")[0]), int(redraw_seed or 0)
        base = codes if codes is not None else int(seed or 0)
        new = self.s.resample_codes([k], seed=r, base=base)
        image, label, codes, status, classes = self.render(value, seed, None, new, instance_file, session)
        return image, label, codes, f"{status}; class {k} redrawn with seed {r}", classes, r + 1

    def codes_note(self) -> str:
        """The page's line on per-class redrawing: how to use it, or why this bundle has none."""
        if self.painter.has_codes:
            return ("**Redraw one class**: pick a class in the map and press *redraw this class*; only that "
                    "class's code changes, to the redraw seed's (which then goes up by one: type a seed back "
                    "to get its look again).")
        return f"**Redraw one class** is not offered for this bundle: {self.s.no_codes_reason}."

    def incremental_note(self) -> str:
        """The page's line on how strokes are synthesized: incrementally, or why not."""
        if self.full_reason is None:
            return ("**Incremental updates**: each stroke redoes only the work it reaches, against this page's "
                    "previous image; a new seed, style image, instance map or redrawn class starts a full pass. "
                    "The status line says which each update was.")
        return f"**Every stroke is a full pass**: {self.full_reason}."

def build(bundle: str | Path, *, backend: str = "auto", seed: int = 0, label: Any = None, instance: Any = None,
          label_format: str = "dataset", threads: int | None = None, incremental: bool = True,
          labels: str | None = None) -> Any:
    """The Gradio Blocks of the app (``.launch()`` it, or use :func:`launch`)."""
    session = AppSession(bundle, backend=backend, threads=threads, label_format=label_format, label=label,
                         instance=instance, seed=seed, incremental=incremental, labels=labels)
    return layout(session)


def _guarded(fn: Any) -> Any:
    """``fn`` as a Gradio event handler that gets the event's request and shows an SDKError as the page's error."""
    import gradio as gr

    # Gradio passes the event's gr.Request to a parameter annotated with the class; this
    # module's annotations are strings (from __future__), so the class is set here, and
    # functools.wraps lets Gradio read fn's parameters through the wrapper.
    fn.__annotations__["request"] = gr.Request

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except SDKError as exc:  # the intake's one line, as the page's error message
            raise gr.Error(str(exc)) from None
    return call


@dataclass
class _Controls:
    """The page's components that events read or write."""
    canvas: Any
    output: Any
    codes_state: Any
    seed_box: Any
    style: Any
    instance: Any
    resample_class: Any
    redraw_seed: Any
    resample_btn: Any
    status: Any
    label_file: Any


def _present_classes(session: AppSession) -> list[int]:
    """Paintable classes of the start map (the redraw choices; the first is the initial brush)."""
    return sorted(set(np.unique(session.start.ids).tolist()) & set(session.painter.paintable))


def _header(session: AppSession) -> None:
    """The page's title line and what painting does."""
    import gradio as gr

    s, p = session.s, session.painter
    h, w = s.bundle.resolution
    gr.Markdown(f"### {s.bundle.name}: paint a label map, watch the image change\n"
                f"Pick a class and paint on the left; each stroke re-synthesizes the image on the right "
                f"({h}x{w}, {s.runner().describe()}). The canvas holds the model's class ids."
                + (" Instance edges come from the instance map (the start map's, or one you upload "
                   "below), else from the borders of the painted regions." if p.takes_instances else ""))


def _controls(session: AppSession) -> _Controls:
    """Lay out the page's components under the header, in page order."""
    import gradio as gr

    p, present, w = session.painter, _present_classes(session), session.s.bundle.resolution[1]
    codes_state = gr.State(None)
    with gr.Row(equal_height=False):
        canvas = gr.HTML("", html_template=paint_html(p, session.start.ids,
                                                       present[0] if present else p.paintable[0], max(4, w // 32)),
                         js_on_load=PAINT_JS, elem_id="sdk-canvas", apply_default_css=False)
        output = gr.Image(label="synthesized", type="filepath", format="png", interactive=False,
                          elem_id="sdk-output", buttons=["download"])
    with gr.Row():
        seed_box = gr.Number(session.seed, precision=0, label="seed", visible=p.takes_seed, elem_id="sdk-seed")
        style = gr.Image(label="style image", type="pil", visible=p.takes_style, elem_id="sdk-style",
                         sources=["upload", "clipboard"], height=160)
        instance = gr.File(label="instance map (PNG of instance ids, the label map's size)", file_types=[".png"],
                           visible=p.takes_instances, elem_id="sdk-instance")
    with gr.Row(visible=p.has_codes):
        resample_class = gr.Dropdown([p.choice(c) for c in present], label="class to redraw",
                                     elem_id="sdk-resample-class")
        redraw_seed = gr.Number(session.seed + 1, precision=0, minimum=0, label="redraw seed",
                                elem_id="sdk-redraw-seed")
        resample_btn = gr.Button("redraw this class", elem_id="sdk-resample")
    gr.Markdown(session.codes_note(), elem_id="sdk-codes-note")
    gr.Markdown(session.incremental_note(), elem_id="sdk-incremental-note")
    status = gr.Markdown(elem_id="sdk-status")
    label_file = gr.File(label="painted label map (PNG of model class ids: read it with --label-format ids)",
                         elem_id="sdk-label-file")
    gr.HTML(p.legend_html())
    return _Controls(canvas, output, codes_state, seed_box, style, instance, resample_class, redraw_seed,
                     resample_btn, status, label_file)


def _wire(session: AppSession, c: _Controls, demo: Any) -> None:
    """Connect the page's events to ``session``'s methods."""
    import gradio as gr

    s, p = session.s, session.painter

    def render(value: Any, seed_: Any, style: Any, codes: Any, inst: Any, request: Any) -> tuple[Any, ...]:
        image, label, codes, status, classes = session.render(value, seed_, style, codes, inst, request.session_hash)
        return image, label, codes, status, (gr.update(choices=classes) if p.has_codes else gr.update())

    def new_seed(value: Any, seed_: Any, style: Any, inst: Any, request: Any) -> tuple[Any, ...]:
        codes = s.sample_codes(int(seed_ or 0)) if p.has_codes else None
        return render(value, seed_, style, codes, inst, request)

    def resample(value: Any, seed_: Any, codes: Any, choice: Any, redraw: Any, inst: Any, request: Any
                 ) -> tuple[Any, ...]:
        image, label, codes, status, classes, nxt = session.resample(value, seed_, codes, choice, redraw, inst,
                                                                     request.session_hash)
        return image, label, codes, status, gr.update(choices=classes), nxt

    def unload(request: Any) -> None:
        session.forget(request.session_hash)

    outs = [c.output, c.label_file, c.codes_state, c.status, c.resample_class]
    ins = [c.canvas, c.seed_box, c.style, c.codes_state, c.instance]
    c.canvas.change(_guarded(render), ins, outs, trigger_mode="always_last", show_progress="hidden", queue=False)
    c.seed_box.change(_guarded(new_seed), [c.canvas, c.seed_box, c.style, c.instance], outs,
                      trigger_mode="always_last", show_progress="hidden")
    c.style.change(_guarded(render), ins, outs, show_progress="hidden")
    c.instance.change(_guarded(render), ins, outs, show_progress="hidden")
    c.resample_btn.click(_guarded(resample), [c.canvas, c.seed_box, c.codes_state, c.resample_class, c.redraw_seed,
                                              c.instance], [*outs, c.redraw_seed], show_progress="hidden")
    demo.load(_guarded(render), ins, outs, show_progress="hidden")
    demo.unload(_guarded(unload))  # the tab closed: free its editor now


def layout(session: AppSession) -> Any:
    """The page of ``session``: canvas and image, controls, status, legend; events wired."""
    import gradio as gr

    with gr.Blocks(title=f"sdk app: {session.s.bundle.name}", delete_cache=(600, 600)) as demo:
        _header(session)
        _wire(session, _controls(session), demo)
    return demo


def launch(bundle: str | Path, *, host: str = "127.0.0.1", port: int = 7860, backend: str = "auto",
           seed: int = 0, label: Any = None, instance: Any = None, label_format: str = "dataset",
           threads: int | None = None, incremental: bool = True, block: bool = True,
           labels: str | None = None) -> Any:
    """Serve the app at http://HOST:PORT (blocking until Ctrl-C unless ``block=False``)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build(bundle, backend=backend, seed=seed, label=label, instance=instance, label_format=label_format,
                 threads=threads, incremental=incremental, labels=labels)
    print(f"sdk app for {bundle} at http://{host}:{port}  (Ctrl-C stops)", flush=True)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True,
                ssr_mode=False, css=CSS, footer_links=[], show_error=True)
    return demo


__all__ = ["AppSession", "build", "launch", "layout"]
