"""Regenerate docs/readme_demo.png: sample label map, the demo model's output, the renderer's image."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdk import Synthesizer
from sdk.atomic import atomic_path


def main() -> None:
    label = ROOT / "samples" / "street_1_label.png"
    out = Synthesizer.from_pretrained(ROOT / "demo" / "spade-street")(label, seed=0)
    tiles = [Image.open(label).convert("RGB"), out, Image.open(ROOT / "samples" / "street_1_photo.png")]
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * 3 + 16, h), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (i * (w + 8), 0))
    with atomic_path(ROOT / "docs" / "readme_demo.png") as tmp:
        sheet.save(tmp, format="PNG")
    print("wrote docs/readme_demo.png")


if __name__ == "__main__":
    main()
