"""Write the sample label maps kept in samples/ (index PNGs with the Cityscapes palette)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sdk.palettes import get_palette
from train.data.procedural import render, scene_label

OUT = Path(__file__).resolve().parent.parent / "samples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    palette = sum(get_palette("cityscapes", 35), [])
    for seed in (1, 2):
        lab = scene_label(seed)
        img = Image.fromarray(lab, "P")
        img.putpalette(palette)
        img.save(OUT / f"street_{seed}_label.png")
        Image.fromarray(render(lab, seed)).save(OUT / f"street_{seed}_photo.png")
        print(f"wrote street_{seed}_label.png {lab.shape} ids {sorted(np.unique(lab).tolist())}")


if __name__ == "__main__":
    main()
