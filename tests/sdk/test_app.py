"""sdk app in a real browser: headless Debian chromium driven by Playwright paints strokes
on the canvas, and the page's image must be the Synthesizer's image of the painted map."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HANG_S, ROOT

pytest.importorskip("gradio", reason="sdk app needs the app extra (gradio)")
pytest.importorskip("playwright", reason="the browser test needs playwright (in the dev extra)")

from sdk.benchmarks.app_browser import (
    browser_context,
    chromium_path,
    fetch_png,
    open_app,
    output_src,
    paint,
    painted_label,
    running_app,
    server_ms,
)

if chromium_path() is None:
    pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it",
                allow_module_level=True)

DEMO = ROOT / "demo" / "spade-street"
LABEL = ROOT / "samples" / "street_1_label.png"


@pytest.fixture(scope="module")
def browser():
    with browser_context() as ctx:
        yield ctx


@pytest.fixture(scope="module")
def page(browser):
    with running_app(DEMO, LABEL) as url:
        pg = browser.new_page()
        open_app(pg, url)
        yield pg
        pg.close()


def test_strokes_update_the_image(page, tmp_path):
    from sdk import Synthesizer
    from sdk.labels import read_ids

    s = Synthesizer.from_pretrained(DEMO)
    start = read_ids(LABEL)
    # The first image on the page is the start label's.
    first = np.asarray(fetch_png(output_src(page)).convert("RGB"), dtype=np.int16)
    assert np.abs(first - np.asarray(s(start), dtype=np.int16)).max() <= 1

    sky = 23  # a class whose colour appears in the palette once
    assert (start[200, 100:400] != sky).all()
    result = paint(page, [(100, 200), (250, 200), (400, 200)], sky, 20)
    ids = painted_label(page)
    # The stroke's core is sky now; rows far from it are the start label's.
    assert (ids[195:206, 105:396] == sky).all()
    assert np.array_equal(ids[:180], start[:180]) and np.array_equal(ids[222:], start[222:])
    # The page shows the Synthesizer's image of exactly that label map, not the old one.
    shown = np.asarray(fetch_png(result["src"]).convert("RGB"), dtype=np.int16)
    assert np.abs(shown - np.asarray(s(ids), dtype=np.int16)).max() <= 1
    assert np.abs(shown - first).mean() > 1.0
    # Generous bound here (CI shares two cores); benchmarks/scale_check.py measures the target.
    assert result["latency_ms"] < 5000
    assert server_ms(page) > 0

    # A second stroke, another class and brush size, on top of the first.
    car = 26
    paint(page, [(60, 120), (60, 160)], car, 8)
    ids2 = painted_label(page)
    assert (ids2[125:156, 58:63] == car).all()
    assert (ids2[195:206, 105:396] == sky).all()  # the first stroke is still there
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert Image.open(tmp_path / "app.png").size[0] > 800


def test_page_lists_the_bundle_classes(page):
    options = page.evaluate("() => [...document.querySelectorAll('#sdk-canvas select.cls option')]"
                            ".map(o => o.textContent)")
    from sdk import Bundle
    from sdk.services.canvas import class_names

    b = Bundle(DEMO)
    names = class_names(b)
    # Cityscapes colours shared by several ids are offered once (the lowest id decodes them).
    first = {}
    for k, c in enumerate(map(tuple, b.label["palette"])):
        first.setdefault(c, k)
    assert options == [f"{k}: {names[k]}" for k in sorted(first.values())] and len(options) == 29
    assert page.is_hidden("#sdk-style") and page.is_hidden("#sdk-resample")  # label-only SPADE


def test_bad_start_label_is_one_line(tmp_path):
    bad = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(bad)
    r = subprocess.run([sys.executable, "-m", "sdk", "app", "--bundle", str(DEMO), "--label", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "label is 10x10 (HxW); this model takes 256x512 maps" in r.stderr


def test_groupdnet_resamples_one_class(small_bundle, browser):
    """GroupDNet bundles get a seed and a per-class resample button: resampling a class
    changes the image and keeps the label map."""
    from sdk import Synthesizer

    bundle = small_bundle("groupdnet-deepfashion")
    s = Synthesizer.from_pretrained(bundle)
    h, w = s.bundle.resolution
    with running_app(bundle) as url:
        pg = browser.new_page()
        open_app(pg, url)
        assert pg.is_visible("#sdk-resample") and pg.is_visible("#sdk-seed")
        k = 3
        paint(pg, [(w * 0.2, h * 0.5), (w * 0.8, h * 0.5)], k, max(4, h // 4))
        ids = painted_label(pg)
        before = np.asarray(fetch_png(output_src(pg)).convert("RGB"), dtype=np.int16)
        # The default codes are the seed's (0): the page shows s(ids, seed=0).
        assert np.abs(before - np.asarray(s(ids, seed=0), dtype=np.int16)).max() <= 1
        n = pg.evaluate("() => window.sdkOutputs.length")
        pg.click("#sdk-resample-class input")
        pg.click(f"#sdk-resample-class li[role='option'][aria-label^='{k}: ']")
        pg.click("#sdk-resample")
        pg.wait_for_function(f"() => window.sdkOutputs.length > {n}", timeout=HANG_S * 1000)
        after = np.asarray(fetch_png(output_src(pg)).convert("RGB"), dtype=np.int16)
        assert np.array_equal(painted_label(pg), ids)
        assert np.abs(after - before).mean() > 0.5
