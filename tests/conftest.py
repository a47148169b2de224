"""Shared fixtures: small bundles exported once per session, keyed by preset."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory):
    """``small_bundle(name)`` -> path of the preset exported at its CI size (cached)."""
    from export.bundle import build_bundle
    from train.models import get_preset

    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("bundles")

    def get(name: str) -> Path:
        if name not in cache:
            out = root / name
            build_bundle(name, out, overrides=get_preset(name).test_overrides, seed=0)
            cache[name] = out
        return cache[name]

    return get


def random_ids(shape: tuple[int, int], num_classes: int, seed: int = 0) -> np.ndarray:
    """A blocky random label map (regions, not salt-and-pepper noise)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.integers(0, num_classes, (max(h // 16, 1), max(w // 16, 1)))
    return np.kron(coarse, np.ones((16, 16), dtype=np.int64))[:h, :w]
