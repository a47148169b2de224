"""Write the sample inputs kept in samples/ (all drawn by code; no dataset file is copied).

* ``street_{1,2}_label.png`` / ``_photo.png``: procedural street scenes (Cityscapes label
  ids, 256x512, index PNGs with the Cityscapes palette) and their rendered images;
* ``ade_1_label.png``: an outdoor scene in ADE20K annotation values (256x256);
* ``coco_1_label.png`` / ``coco_1_inst.png``: a park scene in COCO-Stuff file values
  (255 for unlabeled pixels) and its instance map (8-bit, as SPADE's val_inst);
* ``fashion_{1,2}_label.png`` / ``_photo.png``: person parsing maps with DeepFashion's 8
  values (256x256) and renderings of them, for GroupDNet's per-class methods.

The code blocks of the README and docs/ run on these (tests/test_readme.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sdk.classes import ADE20K, COCO_STUFF
from sdk.palettes import bit_palette, get_palette
from sdk.train.data.procedural import render, scene_label

OUT = Path(__file__).resolve().parent.parent / "samples"


def _save_index(ids: np.ndarray, palette: list[list[int]], path: Path) -> None:
    img = Image.fromarray(ids.astype(np.uint8), "P")
    img.putpalette([c for colour in palette for c in colour][:768])
    img.save(path)


def _paint(ids: np.ndarray, seed: int) -> np.ndarray:
    """A plain rendering: a colour per value, a vertical shading, pixel noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 220, (256, 3)).astype(np.float32)
    h = ids.shape[0]
    shade = (1.1 - 0.3 * np.arange(h) / h)[:, None, None]
    img = colours[ids] * shade + rng.normal(0, 4, (*ids.shape, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def ade_scene() -> np.ndarray:
    """Sky over buildings and trees, grass and a road: ADE20K annotation values (0..150)."""
    v = {name: i for i, name in enumerate(ADE20K)}
    yy, xx = np.mgrid[0:256, 0:256]
    lab = np.full((256, 256), v["sky"], np.uint8)
    lab[90:170, 20:110] = v["building"]
    lab[60:170, 150:230] = v["building"]
    lab[(xx - 128) ** 2 + (yy - 130) ** 2 < 30 ** 2] = v["tree"]
    lab[170:, :] = v["grass"]
    lab[(yy > 170) & (np.abs(xx - 128) < (yy - 160) * 0.9)] = v["road"]
    lab[200:240, 40:60] = v["person"]
    return lab


def coco_scene() -> tuple[np.ndarray, np.ndarray]:
    """A park: sky, trees, grass, two people and a dog in COCO-Stuff file values (label id - 1;
    255 unlabeled), and an 8-bit instance map numbering the three things."""
    v = {name: i for i, name in enumerate(COCO_STUFF)}
    yy, xx = np.mgrid[0:256, 0:256]
    lab = np.full((256, 256), v["sky-other"], np.uint8)
    lab[(xx % 80 - 40) ** 2 + (yy - 110) ** 2 < 35 ** 2] = v["tree"]
    lab[140:, :] = v["grass"]
    inst = np.zeros((256, 256), np.uint8)
    for k, (x0, x1, y0, name) in enumerate([(60, 85, 120, "person"), (150, 172, 125, "person"),
                                            (100, 135, 200, "dog")], start=1):
        lab[y0:230, x0:x1] = v[name]
        inst[y0:230, x0:x1] = k
    lab[:6, :] = 255  # an unlabeled border, as annotation tools leave
    return lab, inst


def fashion_person(seed: int) -> np.ndarray:
    """A standing person on background 0 with seven more parsing values (0..7)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((256, 256), np.uint8)
    yy, xx = np.mgrid[0:256, 0:256]
    cx = 128 + int(rng.integers(-10, 10))
    lab[(xx - cx) ** 2 + (yy - 40) ** 2 < 26 ** 2] = 1  # hair
    lab[(xx - cx) ** 2 / 0.6 + (yy - 52) ** 2 < 18 ** 2] = 2  # face
    lab[70:150, cx - 40:cx + 40] = 4  # top
    lab[75:140, cx - 55:cx - 40] = 3  # arms (skin)
    lab[75:140, cx + 40:cx + 55] = 3
    lab[150:220, cx - 35:cx + 35] = 5  # bottom
    lab[150:220, cx - 3:cx + 3] = 0
    lab[220:238, cx - 35:cx + 35] = 6  # socks
    lab[238:252, cx - 38:cx + 38] = 7  # shoes
    return lab


def main() -> None:
    OUT.mkdir(exist_ok=True)
    cityscapes = get_palette("cityscapes", 35)
    for seed in (1, 2):
        lab = scene_label(seed)
        _save_index(lab, cityscapes, OUT / f"street_{seed}_label.png")
        Image.fromarray(render(lab, seed)).save(OUT / f"street_{seed}_photo.png")
    _save_index(ade_scene(), get_palette("ade20k", 151), OUT / "ade_1_label.png")
    coco, inst = coco_scene()
    Image.fromarray(coco, "L").save(OUT / "coco_1_label.png")
    Image.fromarray(inst, "L").save(OUT / "coco_1_inst.png")
    for seed in (1, 2):
        lab = fashion_person(seed)
        _save_index(lab, bit_palette(8), OUT / f"fashion_{seed}_label.png")
        Image.fromarray(_paint(lab, seed)).save(OUT / f"fashion_{seed}_photo.png")
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    main()
