"""Shared fixtures: small bundles exported once per session, keyed by preset."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per parallel worker: two workers with two torch threads each on two
    # cores thrash (a SPADE training step measured 40x slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


# Label lookups (export.label_lookup) add ~45 s to each export that has them; CI exports
# them for one preset per layout (label first; noise then label) and DP-SIMS (two
# lookups, cheap), and every other preset with plain convolutions. tests/test_label_lookup.py
# checks every family's lookups against its convolutions in torch.
LOOKUP_BUNDLES = {"spade-ade20k", "oasis-ade20k", "dpsims-ade20k", "dpsims-cityscapes", "dpsims-coco"}


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory, worker_id):
    """``small_bundle(name)`` -> path of the preset exported at its CI size.

    Exported once per test run: pytest-xdist workers share the folder (the base temp's
    parent) and take a file lock per preset, so a second worker reuses the first's bundle.
    Tests that modify a bundle must copy it first.
    """
    from filelock import FileLock

    from sdk.export.bundle import build_bundle
    from sdk.train.models import get_preset

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker_id != "master" else base) / "bundles"
    root.mkdir(parents=True, exist_ok=True)

    def get(name: str) -> Path:
        out = root / name
        with FileLock(str(root / f"{name}.lock")):
            if not (out / "manifest.json").is_file():
                build_bundle(name, out, overrides=get_preset(name).test_overrides, seed=0,
                             label_lookup=name in LOOKUP_BUNDLES)
        return out

    return get


# Time limits in tests guard against hangs, never against slowness: every subprocess, server
# start, HTTP request and browser wait gets HANG_S, far above any run seen (the slowest, the
# full-size export, passed 600 s once on a loaded 2-core machine). A test that asserts a
# deadline as behaviour (Ctrl-C ends `sdk serve` within 60 s, say) keeps its own figure and
# says so. SDK_TEST_HANG_S overrides the guard.
HANG_S = float(os.environ.get("SDK_TEST_HANG_S", "2400"))


def run(*args: str) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root, output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)


def random_ids(shape: tuple[int, int], num_classes: int, seed: int = 0) -> np.ndarray:
    """A blocky random label map (regions, not salt-and-pepper noise)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    coarse = rng.integers(0, num_classes, (max(h // 16, 1), max(w // 16, 1)))
    return np.kron(coarse, np.ones((16, 16), dtype=np.int64))[:h, :w]
