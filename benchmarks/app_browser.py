"""Drive ``python -m sdk app`` in a real browser: Debian's chromium, headless, via Playwright.

    python benchmarks/app_browser.py --bundle demo/spade-street --label samples/street_1_label.png \\
        --strokes 10 --screenshot docs/app.png --json app.json

starts the app, paints ``--strokes`` strokes with the mouse, and reports for each the time
from the end of the stroke (pointer up) to the new image on the page, next to the server's
synthesis time. Playwright is pointed at the system browser (``/usr/bin/chromium``) and
never downloads one; the app listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The system chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(bundle: str | Path, label: str | Path | None = None, port: int | None = None,
                timeout_s: float = 180.0) -> Iterator[str]:
    """``python -m sdk app`` in a subprocess on 127.0.0.1; yields its URL, stops it after."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "sdk", "app", "--bundle", str(bundle), "--port", str(port)]
    if label is not None:
        cmd += ["--label", str(label)]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"sdk app exited with {proc.returncode}: {log.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sdk app did not answer at {url} within {timeout_s:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def browser_context(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright browser context in headless system chromium with a fresh profile
    (one per process at a time: Playwright's sync API runs one event loop)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="sdk-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=exe, args=CHROMIUM_FLAGS,
                                                        headless=True, viewport={"width": width, "height": height})
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """One page in its own :func:`browser_context`."""
    with browser_context(width, height) as ctx:
        yield ctx.new_page()


def open_app(page: Any, url: str, timeout_ms: int = 120_000) -> None:
    """Load the page and wait for the canvas and the first image."""
    page.goto(url)
    page.wait_for_selector("#sdk-canvas canvas.paint[data-ready='1']", timeout=timeout_ms)
    page.wait_for_selector("#sdk-output img", timeout=timeout_ms)
    # Timestamp every new output image (src change) in the page's own clock.
    page.evaluate("""() => {
        window.sdkOutputs = [];
        const root = document.querySelector('#sdk-output');
        const seen = () => { const img = root.querySelector('img'); return img ? img.src : null; };
        let last = seen();
        new MutationObserver(() => { const s = seen(); if (s && s !== last) { last = s;
            window.sdkOutputs.push({src: s, at: performance.now()}); } })
          .observe(root, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    }""")


def output_src(page: Any) -> str:
    return page.get_attribute("#sdk-output img", "src")


def fetch_png(url: str) -> Image.Image:
    with urllib.request.urlopen(url, timeout=30) as r:
        img = Image.open(io.BytesIO(r.read()))
        img.load()
        return img


def paint(page: Any, points: list[tuple[float, float]], cls: int, size: int, timeout_ms: int = 30_000
          ) -> dict[str, Any]:
    """Paint a stroke through ``points`` (label-map pixel coordinates) with class ``cls``.

    Returns the new output image's URL and the latency from pointer-up to the image's
    arrival, measured in the page (``performance.now()``)."""
    page.select_option("#sdk-canvas select.cls", str(cls))
    page.evaluate("(v) => { const s = document.querySelector('#sdk-canvas input.size'); s.value = v;"
                  " s.dispatchEvent(new Event('input')); }", str(size))
    canvas = page.locator("#sdk-canvas canvas.paint")
    box = canvas.bounding_box()
    w, h = (int(v) for v in page.evaluate("() => { const c = document.querySelector('#sdk-canvas canvas.paint');"
                                            " return [c.width, c.height]; }"))
    before = page.evaluate("() => window.sdkOutputs.length")

    def css(x: float, y: float) -> tuple[float, float]:
        return box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h

    page.mouse.move(*css(*points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*css(x, y), steps=4)
    page.mouse.up()
    page.wait_for_function(f"() => window.sdkOutputs.length > {before}", timeout=timeout_ms)
    out = page.evaluate(f"() => window.sdkOutputs[{before}]")
    end = page.evaluate("() => window.sdkStrokeEndAt")
    return {"src": out["src"], "latency_ms": out["at"] - end}


def painted_label(page: Any) -> np.ndarray:
    """The label map the server synthesized last, as the page offers it for download."""
    page.wait_for_selector("#sdk-label-file a[href]")
    href = page.get_attribute("#sdk-label-file a[href]", "href")
    return np.asarray(fetch_png(href)).astype(np.int64)


def server_ms(page: Any) -> float:
    """The synthesis time the app reports for its last image."""
    text = page.inner_text("#sdk-status")
    return float(text.split(":")[1].split("ms")[0])


def measure(bundle: str | Path, label: str | Path | None, strokes: int, screenshot: str | Path | None
            ) -> dict[str, Any]:
    """Paint ``strokes`` strokes; per-stroke latency against the server's synthesis time."""
    rows = []
    with running_app(bundle, label) as url, browser_page() as page:
        open_app(page, url)
        w, h = page.evaluate("() => { const c = document.querySelector('#sdk-canvas canvas.paint');"
                             " return [c.width, c.height]; }")
        classes = page.evaluate("() => [...document.querySelectorAll('#sdk-canvas select.cls option')]"
                                ".map(o => +o.value)")
        rng = np.random.default_rng(0)
        for i in range(strokes):
            y = float(rng.uniform(0.1, 0.9) * h)
            x0, x1 = sorted(rng.uniform(0.05, 0.95, 2) * w)
            cls = int(classes[int(rng.integers(len(classes)))])
            r = paint(page, [(x0, y), ((x0 + x1) / 2, y + 4), (x1, y)], cls, max(4, w // 32))
            time.sleep(0.3)  # let the status line of this stroke arrive
            rows.append({"stroke": i, "class": cls, "latency_ms": round(r["latency_ms"], 1),
                         "synthesis_ms": server_ms(page)})
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    lat = [r["latency_ms"] for r in rows]
    syn = [r["synthesis_ms"] for r in rows]
    over = [a - b for a, b in zip(lat, syn)]
    return {"strokes": rows, "median_latency_ms": round(statistics.median(lat), 1),
            "max_latency_ms": round(max(lat), 1), "median_synthesis_ms": round(statistics.median(syn), 1),
            "median_overhead_ms": round(statistics.median(over), 1), "max_overhead_ms": round(max(over), 1),
            "target": "latency <= synthesis + 150 ms",
            "met_median": statistics.median(over) <= 150.0, "met_all": max(over) <= 150.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default=str(ROOT / "demo" / "spade-street"))
    p.add_argument("--label", default=str(ROOT / "samples" / "street_1_label.png"))
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--screenshot", default=None, help="save a screenshot of the page after the strokes")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = measure(args.bundle, args.label, args.strokes, args.screenshot)
    print(json.dumps({k: v for k, v in result.items() if k != "strokes"}, indent=2))
    if args.json:
        from sdk.atomic import write_bytes_atomic

        write_bytes_atomic(args.json, (json.dumps(result, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
