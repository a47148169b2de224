"""``python -m benchmarks.metrics``: two folders of images in, the pairwise metrics out."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import HANG_S, ROOT


def test_metrics_of_two_folders(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    for i in range(3):
        img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / "real" / f"{i}.png")
        noisy = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / "fake" / f"{i}.png")
    out = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.metrics", "--real", str(tmp_path / "real"), "--fake",
                           str(tmp_path / "fake"), "--metrics", "psnr,ssim,swd", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(out.read_text())
    assert scores["images"] == 3 and 30 < scores["psnr"] < 45 and 0 < scores["ssim"] < 1 and scores["swd"] > 0
    (tmp_path / "fake" / "2.png").unlink()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.metrics", "--real", str(tmp_path / "real"), "--fake",
                           str(tmp_path / "fake"), "--metrics", "fid"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --metrics: 'fid'")
