"""The README's screenshot of ``python -m sdk app`` (docs/app.png): headless chromium paints
a few strokes on the sample street (cars on the road, trees over a building, sky, a tower)
and photographs the page.

    python scripts/app_screenshot.py [--out docs/app.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdk.benchmarks.app_browser import browser_page, open_app, paint, running_app

# (class, brush, points in label-map pixels (x, y)) on samples/street_1_label.png (256x512)
STROKES = [
    (26, 40, [(300, 205), (360, 205)]),                 # a car on the road
    (26, 28, [(140, 215), (175, 215)]),                 # a smaller one
    (21, 48, [(30, 60), (60, 40), (95, 75)]),           # trees over the left building
    (23, 24, [(430, 75), (500, 75)]),                   # more sky over the right building
    (11, 30, [(180, 120), (180, 50)]),                  # a tower in the gap between buildings
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    args = p.parse_args()
    with running_app(ROOT / "demo" / "spade-street", ROOT / "samples" / "street_1_label.png") as url, \
            browser_page(1300, 700) as page:
        open_app(page, url)
        for cls, size, points in STROKES:  # each stroke changes the map, so each brings an image
            paint(page, points, cls, size)
        time.sleep(1.0)
        page.screenshot(path=args.out, full_page=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
