"""Colour palettes for label maps: decoding RGB label PNGs and colouring label maps."""
from __future__ import annotations

import numpy as np

# Cityscapes label ids 0..33 as the dataset defines their colours (id 34 is unused by the
# dataset; SPADE's 35-channel one-hot keeps it). Several ids share black; an RGB label
# decodes to the lowest id of its colour.
_CITYSCAPES = [
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81),
    (128, 64, 128), (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70),
    (102, 102, 156), (190, 153, 153), (180, 165, 180), (150, 100, 100), (150, 120, 90),
    (153, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
    (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    (0, 0, 142),
]


def bit_palette(n: int) -> list[tuple[int, int, int]]:
    """The PASCAL-VOC style palette (bits of the id spread over R, G, B): distinct colours."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def get_palette(name: str | None, num_classes: int) -> list[list[int]]:
    """Palette by name (``cityscapes``; anything else gets :func:`bit_palette`)."""
    colours = _CITYSCAPES if name == "cityscapes" and num_classes <= len(_CITYSCAPES) else bit_palette(num_classes)
    return [list(c) for c in colours[:num_classes]]


def colorize(ids: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB."""
    return np.asarray(palette, dtype=np.uint8)[ids]
