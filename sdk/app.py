"""``python -m sdk app``: paint a label map in the browser and watch the image change.

A Gradio page in the spirit of the SPADE authors' GauGAN demo: a canvas at the model's
resolution showing the label map in the bundle's palette, a class picker (names from
the manifest, ``class i`` where a bundle has none) that sets the brush colour, brush size,
seed, a style image where the model has a style encoder, and for GroupDNet bundles a
per-class resample button. Every stroke re-synthesizes the image.

The page holds the label map as class ids and paints hard-edged discs (no anti-aliased
colours to guess at); at the end of each stroke it sends the ids as a small PNG. The
painted label map can be downloaded as a PNG of class ids, ready for ``python -m sdk
synthesize`` or ``sdk batch``.
"""
from __future__ import annotations

import base64
import html
import io
import json
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import labels as L
from .errors import SDKError

CSS = """
#sdk-canvas canvas.paint {width: 100%; height: auto; image-rendering: pixelated; cursor: crosshair;
  touch-action: none; border: 1px solid #8886; display: block}
#sdk-canvas .tools {display: flex; gap: 12px; align-items: center; margin-bottom: 6px; flex-wrap: wrap}
#sdk-canvas .swatch {display: inline-block; width: 1.4em; height: 1.4em; border: 1px solid #8888;
  vertical-align: middle}
#sdk-legend {display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 0.85em}
#sdk-legend span.sw {display: inline-block; width: 0.9em; height: 0.9em; margin-right: 4px;
  border: 1px solid #8888; vertical-align: -0.1em}
"""

# The paint canvas (a Gradio HTML component). The page keeps the label map as class ids
# and paints hard-edged discs, so there are no anti-aliased colours to guess at; at the
# end of each stroke it sends the ids as a PNG (id in every channel) to the server.
PAINT_JS = r"""
const canvas = element.querySelector('canvas.paint');
const select = element.querySelector('select.cls');
const size = element.querySelector('input.size');
const swatch = element.querySelector('.swatch');
const sizeLabel = element.querySelector('.size-value');
const palette = JSON.parse(element.querySelector('.data').dataset.palette);
const W = canvas.width, H = canvas.height;
const ctx = canvas.getContext('2d');
const ids = new Uint8Array(W * H);
const view = ctx.createImageData(W, H);
function paintRect(x0, y0, x1, y1) {
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
    const i = y * W + x, c = palette[ids[i]];
    view.data[4 * i] = c[0]; view.data[4 * i + 1] = c[1]; view.data[4 * i + 2] = c[2]; view.data[4 * i + 3] = 255;
  }
  ctx.putImageData(view, 0, 0, x0, y0, x1 - x0, y1 - y0);
}
function send() {
  const off = document.createElement('canvas'); off.width = W; off.height = H;
  const octx = off.getContext('2d'); const img = octx.createImageData(W, H);
  for (let i = 0; i < W * H; i++) { const v = ids[i]; img.data[4*i] = v; img.data[4*i+1] = v; img.data[4*i+2] = v; img.data[4*i+3] = 255; }
  octx.putImageData(img, 0, 0);
  window.sdkStrokeSentAt = performance.now();
  props.value = off.toDataURL('image/png');  // Gradio sends a change event for a new value
}
const start = new Image();
start.onload = () => {
  const off = document.createElement('canvas'); off.width = W; off.height = H;
  const octx = off.getContext('2d'); octx.drawImage(start, 0, 0);
  const px = octx.getImageData(0, 0, W, H).data;
  for (let i = 0; i < W * H; i++) ids[i] = px[4 * i];
  paintRect(0, 0, W, H);
  canvas.dataset.ready = '1';
};
start.src = element.querySelector('.data').dataset.start;
function showBrush() {
  swatch.style.background = 'rgb(' + palette[+select.value].join(',') + ')';
  sizeLabel.textContent = size.value;
}
select.addEventListener('change', showBrush); size.addEventListener('input', showBrush); showBrush();
function at(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * W / r.width, (e.clientY - r.top) * H / r.height];
}
function stamp(cx, cy) {
  const rad = Math.max(0.5, +size.value / 2), k = +select.value;
  const x0 = Math.max(0, Math.floor(cx - rad)), x1 = Math.min(W, Math.ceil(cx + rad) + 1);
  const y0 = Math.max(0, Math.floor(cy - rad)), y1 = Math.min(H, Math.ceil(cy + rad) + 1);
  if (x0 >= x1 || y0 >= y1) return;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
    const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
    if (dx * dx + dy * dy <= rad * rad) ids[y * W + x] = k;
  }
  paintRect(x0, y0, x1, y1);
}
let last = null;
function line(p) {
  const [x, y] = p;
  if (last) {
    const d = Math.hypot(x - last[0], y - last[1]), n = Math.max(1, Math.ceil(d / Math.max(1, +size.value / 4)));
    for (let j = 1; j <= n; j++) stamp(last[0] + (x - last[0]) * j / n, last[1] + (y - last[1]) * j / n);
  } else stamp(x, y);
  last = p;
}
canvas.addEventListener('pointerdown', (e) => { canvas.setPointerCapture(e.pointerId); last = null; line(at(e)); });
canvas.addEventListener('pointermove', (e) => { if (last) line(at(e)); });
function end(e) { if (last) { last = null; window.sdkStrokeEndAt = performance.now(); send(); } }
canvas.addEventListener('pointerup', end);
canvas.addEventListener('pointercancel', end);
"""


def class_names(bundle: Any) -> list[str]:
    """The manifest's class names, or ``class i`` for bundles exported without them."""
    n = bundle.num_classes or 0
    names = list(bundle.label.get("classes") or [])
    return [str(names[i]) if i < len(names) and names[i] else f"class {i}" for i in range(n)]


def hex_colour(rgb: Any) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


class Painter:
    """What the page needs from a bundle: paintable classes, names, one synthesis per stroke."""

    def __init__(self, synthesizer: Any) -> None:
        self.s = synthesizer
        b = synthesizer.bundle
        if b.task != "semantic" or not b.label.get("palette"):
            raise SDKError(f"{b.name} is not a label-to-image model with a palette; the app paints label maps "
                           f"for semantic models (e.g. demo/spade-street)")
        if (b.num_classes or 0) > 256:
            raise SDKError(f"{b.name} has {b.num_classes} classes; the app paints at most 256")
        self.palette = np.asarray(b.label["palette"], dtype=np.int64)
        self.names = class_names(b)
        # Classes that share a colour decode to the lowest id (as sdk.labels does), so the
        # class picker offers each colour once.
        first: dict[tuple[int, ...], int] = {}
        for i, c in enumerate(map(tuple, self.palette.tolist())):
            first.setdefault(c, i)
        self.paintable = sorted(first.values())
        self.has_codes = bool(synthesizer.has_codes)
        inputs = b.graph("model")["inputs"]
        self.takes_seed = any(i["kind"] in ("latent", "codes") for i in inputs)
        self.takes_style = b.has_graph("encoder") and not self.has_codes
        self.last_ms = float("nan")

    def choice(self, k: int) -> str:
        return f"{k}: {self.names[k]}"

    def legend_html(self) -> str:
        items = "".join(f'<span><span class="sw" style="background:{hex_colour(self.palette[k])}"></span>'
                        f"{k}: {html.escape(self.names[k])}</span>" for k in self.paintable)
        return f'<div id="sdk-legend">{items}</div>'

    def synthesize(self, ids: np.ndarray, seed: int, style: Any, codes: np.ndarray | None) -> Image.Image:
        start = time.perf_counter()
        if self.has_codes:
            img = self.s(ids, codes=codes)
        elif style is not None and self.takes_style:
            img = self.s(ids, style=style)
        else:
            img = self.s(ids, seed=seed)
        self.last_ms = (time.perf_counter() - start) * 1e3
        return img


def paint_html(p: "Painter", ids: np.ndarray, default: int, brush: int) -> str:
    """The canvas component's HTML: class picker, brush size, the canvas and its data."""
    h, w = ids.shape
    buf = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8), "L").save(buf, format="PNG")
    start = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    options = "".join(f'<option value="{k}"{" selected" if k == default else ""}>'
                      f"{k}: {html.escape(p.names[k])}</option>" for k in p.paintable)
    return (f'<div class="tools"><label>class <span class="swatch"></span> <select class="cls">{options}</select>'
            f'</label><label>brush <input class="size" type="range" min="1" max="{max(8, w // 4)}" '
            f'value="{brush}"> <span class="size-value"></span> px</label></div>'
            f'<canvas class="paint" width="{w}" height="{h}"></canvas>'
            f"<div class=\"data\" hidden data-palette='{json.dumps(p.palette.tolist())}' "
            f'data-start="{start}"></div>')


def decode_canvas(value: Any) -> np.ndarray | None:
    """The canvas's PNG data URL (id in every channel) -> (H, W) ids; None before any stroke."""
    if not value or not isinstance(value, str) or not value.startswith("data:image/png;base64,"):
        return None
    img = Image.open(io.BytesIO(base64.b64decode(value.split(",", 1)[1])))
    return np.asarray(img.convert("RGB"))[..., 0].astype(np.int64)


def build(bundle: str | Path, *, backend: str = "auto", seed: int = 0, label: str | Path | None = None) -> Any:
    """The Gradio Blocks of the app (``.launch()`` it, or use :func:`launch`)."""
    import gradio as gr

    from .synthesizer import Synthesizer

    s = Synthesizer.from_pretrained(bundle, backend=backend)
    p = Painter(s)
    h, w = s.bundle.resolution
    if label is not None:
        ids0 = L.read_ids(label, palette=s.bundle.label.get("palette"))
        L.check_size(ids0, (h, w))
        L.check_ids(ids0, s.bundle.num_classes)
    else:
        ids0 = np.full((h, w), p.paintable[0], dtype=np.int64)
    present = sorted(set(np.unique(ids0).tolist()) & set(p.paintable))
    out_dir = Path(tempfile.mkdtemp(prefix="sdk-app-"))
    written: deque[Path] = deque()

    def render(value: Any, seed_: float | None, style: Any, codes: Any) -> tuple[Any, ...]:
        ids = decode_canvas(value)
        if ids is None:
            ids = ids0
        else:
            L.check_size(ids, (h, w), "painted label")
            L.check_ids(ids, s.bundle.num_classes, "painted label")
        k = int(seed_ or 0)
        if p.has_codes and codes is None:
            codes = s.sample_codes(k)
        img = p.synthesize(ids, k, style, codes)
        # New names per stroke (browsers cache by URL); zlib level 1 writes the image ~5x
        # faster than Gradio's own PNG encoding (level 6), which is most of a stroke's latency.
        stamp = time.monotonic_ns()
        image_path, label_path = out_dir / f"image_{stamp}.png", out_dir / f"label_{stamp}.png"
        img.save(image_path, format="PNG", compress_level=1)
        Image.fromarray(ids.astype(np.uint8), "L").save(label_path)
        written.extend([image_path, label_path])
        while len(written) > 16:  # Gradio serves copies from its cache; keep the last few strokes
            written.popleft().unlink(missing_ok=True)
        classes = sorted(np.unique(ids).tolist())
        status = (f"{s.runner().describe()}: {p.last_ms:.0f} ms; classes in the map: "
                  + ", ".join(p.names[c] for c in classes[:12]) + (" ..." if len(classes) > 12 else ""))
        resample_dd = gr.update(choices=[p.choice(c) for c in classes]) if p.has_codes else gr.update()
        return str(image_path), str(label_path), codes, status, resample_dd

    def new_seed(value: Any, seed_: float | None, style: Any) -> tuple[Any, ...]:
        codes = s.sample_codes(int(seed_ or 0)) if p.has_codes else None
        return render(value, seed_, style, codes)

    def resample(value: Any, seed_: float | None, codes: Any, choice: str | None) -> tuple[Any, ...]:
        if not choice:
            raise gr.Error("pick a class to resample")
        k = int(str(choice).split(":")[0])
        base = codes if codes is not None else s.sample_codes(int(seed_ or 0))
        new = base.copy()
        new[k] = s.sample_codes(int(np.random.default_rng().integers(2**31)))[k]  # only class k's code changes
        return render(value, seed_, None, new)

    with gr.Blocks(title=f"sdk app: {s.bundle.name}", delete_cache=(600, 600)) as demo:
        gr.Markdown(f"### {s.bundle.name}: paint a label map, watch the image change\n"
                    f"Pick a class and paint on the left; each stroke re-synthesizes the image on the right "
                    f"({h}x{w}, {s.runner().describe()}).")
        codes_state = gr.State(None)
        with gr.Row(equal_height=False):
            canvas = gr.HTML("", html_template=paint_html(p, ids0, present[0] if present else p.paintable[0],
                                                           max(4, w // 32)),
                             js_on_load=PAINT_JS, elem_id="sdk-canvas", apply_default_css=False)
            output = gr.Image(label="synthesized", type="filepath", format="png", interactive=False,
                              elem_id="sdk-output", buttons=["download"])
        with gr.Row():
            seed_box = gr.Number(seed, precision=0, label="seed", visible=p.takes_seed, elem_id="sdk-seed")
            style = gr.Image(label="style image", type="pil", visible=p.takes_style, elem_id="sdk-style",
                             sources=["upload", "clipboard"], height=160)
        with gr.Row(visible=p.has_codes):
            resample_class = gr.Dropdown([p.choice(c) for c in present], label="class to resample",
                                         elem_id="sdk-resample-class")
            resample_btn = gr.Button("resample this class", elem_id="sdk-resample")
        status = gr.Markdown(elem_id="sdk-status")
        label_file = gr.File(label="painted label map (PNG of class ids, for sdk synthesize / batch)",
                             elem_id="sdk-label-file")
        gr.HTML(p.legend_html())

        outs = [output, label_file, codes_state, status, resample_class]
        ins = [canvas, seed_box, style, codes_state]
        canvas.change(render, ins, outs, trigger_mode="always_last", show_progress="hidden", queue=False)
        seed_box.change(new_seed, [canvas, seed_box, style], outs, trigger_mode="always_last", show_progress="hidden")
        style.change(render, ins, outs, show_progress="hidden")
        resample_btn.click(resample, [canvas, seed_box, codes_state, resample_class], outs, show_progress="hidden")
        demo.load(render, ins, outs, show_progress="hidden")
    return demo


def launch(bundle: str | Path, *, host: str = "127.0.0.1", port: int = 7860, backend: str = "auto",
           seed: int = 0, label: str | Path | None = None, block: bool = True) -> Any:
    """Serve the app at http://HOST:PORT (blocking until Ctrl-C unless ``block=False``)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build(bundle, backend=backend, seed=seed, label=label)
    print(f"sdk app for {bundle} at http://{host}:{port}  (Ctrl-C stops)", flush=True)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True,
                ssr_mode=False, css=CSS, footer_links=[], show_error=True)
    return demo


__all__ = ["Painter", "build", "class_names", "decode_canvas", "launch"]
