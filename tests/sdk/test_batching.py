"""Large requests run in batches: the same images whatever the batch size, bounded memory,
a progress bar, and outputs streamed to disk by the CLI."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sdk import Synthesizer
from tests.conftest import HANG_S, ROOT, random_ids


@pytest.fixture(scope="module")
def vae(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("spade-cityscapes-vae"), backend="onnxruntime", label_format="ids")


def test_images_do_not_depend_on_the_batch_size(vae):
    h, w = vae.bundle.resolution
    labels = [random_ids((h, w), 35, seed=i) for i in range(3)]
    whole = vae(labels, seed=5, n=2, output="uint8", batch_size=6)
    assert whole.shape == (6, h, w, 3) and whole.dtype == np.uint8
    for batch_size in (1, 4, None):
        chunked = vae(labels, seed=5, n=2, output="uint8", batch_size=batch_size)
        # same latents in the same order; onnxruntime may round a batch differently by one level
        assert np.abs(chunked.astype(int) - whole.astype(int)).max() <= 1, batch_size
    streamed = np.stack(list(vae.stream(labels, seed=5, n=2, output="uint8", batch_size=4)))
    np.testing.assert_array_equal(streamed, vae(labels, seed=5, n=2, output="uint8", batch_size=4))
    # image i of the request is image i whatever else was asked
    np.testing.assert_array_equal(vae(labels[0], seed=5, n=2, output="uint8", batch_size=1),
                                  vae(labels, seed=5, n=2, output="uint8", batch_size=1)[:2])


def test_output_kinds(vae):
    h, w = vae.bundle.resolution
    label = random_ids((h, w), 35)
    pil, u8, flt = (vae(label, seed=0, output=o) for o in ("pil", "uint8", "float"))
    assert pil.size == (w, h) and u8.shape == (h, w, 3) and flt.shape == (3, h, w) and flt.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(pil), u8)
    rounded = np.clip((flt.transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(int)
    assert np.abs(rounded - u8.astype(int)).max() <= 1 and -1 <= flt.min() and flt.max() <= 1


def _max_rss_kb(args: list[str]) -> tuple[int, subprocess.CompletedProcess]:
    """Run ``python args`` and return its peak RSS (ru_maxrss of the child, KiB on Linux)."""
    code = ("import resource, runpy, subprocess, sys; "
            "r = subprocess.run([sys.executable] + sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    rss = int(proc.stdout.rsplit("MAXRSS", 1)[1])
    return rss, proc


def test_ten_thousand_images_stream_to_disk_in_bounded_memory(small_bundle, tmp_path):
    """The CLI writes each image as its batch finishes: 10,000 images take about the memory
    of 100, and the progress bar runs when asked."""
    bundle = str(small_bundle("progan-64"))
    small, _ = _max_rss_kb(["-m", "sdk", "sample", "--bundle", bundle, "--seed", "1", "--n", "100",
                            "--out", str(tmp_path / "a" / "img.png")])
    big, proc = _max_rss_kb(["-m", "sdk", "sample", "--bundle", bundle, "--seed", "1", "--n", "10000",
                             "--progress", "--out", str(tmp_path / "b" / "img.png")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted((tmp_path / "b").iterdir())
    assert len(files) == 10000 and files[0].name == "img_0000.png" and files[-1].name == "img_9999.png"
    assert not any(f.name.startswith(".") for f in files)  # no temp files left behind
    assert "10000/10000" in proc.stderr  # the progress bar reached the end
    assert "wrote 10000 files" in proc.stdout
    assert big < small + 64 * 1024, (small, big)  # within 64 MB of the 100-image run
    # the first 100 images are the 100 of the small run
    a = (tmp_path / "a" / "img_00.png").read_bytes()
    assert a == (tmp_path / "b" / "img_0000.png").read_bytes()
