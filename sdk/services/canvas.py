"""The app's paint canvas: a Gradio HTML component that paints model class ids.

The page keeps the label map as class ids (model ids: the app paints what the model takes)
and paints hard-edged discs, so there are no anti-aliased colours to guess at; at the end of
each stroke it sends the ids as a PNG data URL (id in the red channel), which the app hands
to :meth:`sdk.LabelIntake.read_canvas`. :class:`Painter` holds what the page needs from a
bundle: the paintable classes, their names and colours.
"""
from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np
from PIL import Image

from sdk import SDKError
from sdk.manifest import Kind

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

# The paint canvas (a Gradio HTML component): see the module docstring.
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
    """What the page needs from a bundle (through its Synthesizer): the paintable classes,
    their names and colours, and which controls apply."""

    def __init__(self, synthesizer: Any) -> None:
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
        self.takes_seed = b.graph("model").takes(Kind.LATENT, Kind.CODES)
        self.takes_style = b.has_graph("encoder") and not self.has_codes
        self.takes_instances = bool(b.label.get("instance_edge"))

    def choice(self, k: int) -> str:
        return f"{k}: {self.names[k]}"

    def legend_html(self) -> str:
        items = "".join(f'<span><span class="sw" style="background:{hex_colour(self.palette[k])}"></span>'
                        f"{k}: {html.escape(self.names[k])}</span>" for k in self.paintable)
        return f'<div id="sdk-legend">{items}</div>'


def paint_html(p: "Painter", ids: np.ndarray, default: int, brush: int) -> str:
    """The canvas component's HTML: class picker, brush size, the canvas and its data."""
    h, w = ids.shape
    start = canvas_url(ids)
    options = "".join(f'<option value="{k}"{" selected" if k == default else ""}>'
                      f"{k}: {html.escape(p.names[k])}</option>" for k in p.paintable)
    return (f'<div class="tools"><label>class <span class="swatch"></span> <select class="cls">{options}</select>'
            f'</label><label>brush <input class="size" type="range" min="1" max="{max(8, w // 4)}" '
            f'value="{brush}"> <span class="size-value"></span> px</label></div>'
            f'<canvas class="paint" width="{w}" height="{h}"></canvas>'
            f"<div class=\"data\" hidden data-palette='{json.dumps(p.palette.tolist())}' "
            f'data-start="{start}"></div>')


def canvas_url(ids: np.ndarray) -> str:
    """An (H, W) map of model ids as the canvas holds it: a PNG data URL (8-bit grey; the
    page's own strokes come back as RGBA with the id in the red channel)."""
    return "data:image/png;base64," + base64.b64encode(ids_png(ids)).decode()


def ids_png(ids: np.ndarray) -> bytes:
    """An (H, W) map of model ids (< 256) as an 8-bit grey PNG."""
    buf = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["CSS", "PAINT_JS", "Painter", "canvas_url", "class_names", "hex_colour", "ids_png", "paint_html"]
