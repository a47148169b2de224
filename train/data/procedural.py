"""Procedural street scenes: a label map (Cityscapes ids) and a rendered image per seed.

Numpy only, deterministic per seed, so anything can be trained, tested and
demonstrated with no dataset download. The renderer gives each class its own colour,
texture and shading, so a model that learns it produces recognisable renderings.
"""
from __future__ import annotations

import numpy as np

# Cityscapes ids used by the scenes
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, CAR = 7, 8, 11, 17, 21, 23, 26
_BASE = {ROAD: (90, 85, 95), SIDEWALK: (170, 150, 160), BUILDING: (120, 100, 80), POLE: (60, 60, 60),
         VEGETATION: (50, 110, 40), SKY: (130, 170, 225), CAR: (30, 40, 120)}


def scene_label(seed: int, height: int = 256, width: int = 512) -> np.ndarray:
    """An (H, W) uint8 label map of a street scene: sky, buildings, trees, road, sidewalk, cars, poles."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    lab = np.full((h, w), SKY, np.uint8)
    horizon = int(h * rng.uniform(0.45, 0.6))
    x = 0
    while x < w:  # a skyline of buildings with varied heights
        bw = int(w * rng.uniform(0.08, 0.25))
        top = int(h * rng.uniform(0.1, 0.4))
        lab[top:horizon, x:x + bw] = BUILDING
        x += bw + int(w * rng.uniform(0.0, 0.05))
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(1, 4)):  # trees: round crowns
        cx, cy = rng.uniform(0, w), rng.uniform(h * 0.25, horizon)
        r = h * rng.uniform(0.08, 0.16)
        lab[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = VEGETATION
    lab[horizon:, :] = SIDEWALK
    # the road: a trapezoid narrowing to a vanishing point on the horizon
    vx = w * rng.uniform(0.35, 0.65)
    t = (yy - horizon) / max(h - horizon, 1)
    half = (0.05 + 0.6 * t) * w
    lab[(yy >= horizon + 2) & (np.abs(xx - vx) < half)] = ROAD
    for _ in range(rng.integers(1, 4)):  # cars on the road, larger when nearer
        ty = rng.uniform(0.3, 0.9)
        cy = int(horizon + ty * (h - horizon))
        cw, ch = int(w * (0.06 + 0.12 * ty)), int(h * (0.04 + 0.1 * ty))
        cx = int(vx + rng.uniform(-0.5, 0.5) * (0.05 + 0.6 * ty) * w)
        lab[max(cy - ch, 0):cy, max(cx - cw // 2, 0):cx + cw // 2] = CAR
    for _ in range(rng.integers(0, 3)):  # poles on the sidewalk
        px = int(rng.uniform(0, w))
        lab[int(h * 0.2):int(horizon + 0.3 * (h - horizon)), px:px + max(w // 128, 2)] = POLE
    return lab


def render(lab: np.ndarray, seed: int) -> np.ndarray:
    """(H, W) label map -> (H, W, 3) uint8 image: per-class colour, texture and shading."""
    rng = np.random.default_rng(seed + 1_000_003)
    h, w = lab.shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.zeros((h, w, 3), np.float32)
    for cid, base in _BASE.items():
        m = lab == cid
        if not m.any():
            continue
        colour = np.array(base, np.float32) * rng.uniform(0.85, 1.15, 3)
        if cid == SKY:  # vertical gradient
            shade = 1.1 - 0.4 * yy
        elif cid == BUILDING:  # window grid
            shade = 0.85 + 0.3 * ((np.sin(xx * w / 6) > 0.3) & (np.sin(yy * h / 6) > 0.3))
        elif cid == ROAD:  # darker far away, lane stripes
            shade = 0.8 + 0.3 * yy + 0.5 * ((np.abs(np.sin(yy * h / 5)) > 0.9) & (np.abs(xx - 0.5) < 0.005))
        elif cid == VEGETATION:
            shade = 0.8 + 0.3 * np.sin(xx * w / 3) * np.sin(yy * h / 3)
        else:
            shade = np.ones_like(yy)
        img[m] = colour * shade[m][:, None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
