"""``python -m sdk sample`` (unconditional) and ``translate`` (image to image) end to end,
and the shared GIF writer."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import SDKError
from sdk.animation import save_gif
from tests.conftest import run


def test_sample_pngs_and_interpolation_gif(small_bundle, tmp_path):
    bundle = small_bundle("progan-64")
    r = run("-m", "sdk", "sample", "--bundle", str(bundle), "--seed", "0", "--n", "2",
            "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    a, b = (np.asarray(Image.open(tmp_path / f"s_{i}.png")) for i in range(2))
    assert a.shape == (16, 16, 3) and not np.array_equal(a, b)
    r = run("-m", "sdk", "sample", "--bundle", str(bundle), "--seed", "0", "--interpolate", "1",
            "--steps", "4", "--out", str(tmp_path / "walk.gif"))
    assert r.returncode == 0, r.stderr
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.format == "GIF" and gif.n_frames == 4 and gif.size == (16, 16)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_translate_top_and_all_scales(small_bundle, tmp_path):
    from sdk import Bundle

    bundle = small_bundle("msgunet-512")
    h, w = Bundle(bundle).resolution
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    r = run("-m", "sdk", "translate", "--bundle", str(bundle), "--image", str(tmp_path / "in.png"),
            "--out", str(tmp_path / "t.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "t.png").size == (w, h)
    r = run("-m", "sdk", "translate", "--bundle", str(bundle), "--image", str(tmp_path / "in.png"),
            "--all-scales", "--out", str(tmp_path / "t.png"))
    assert r.returncode == 0, r.stderr
    outputs = [o for o in Bundle(bundle).graph("model").outputs if o.kind == "image"]
    for o in outputs:
        assert Image.open(tmp_path / f"t_{o.name}.png").size == (o.shape[3], o.shape[2])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "t_image.png")),
                                  np.asarray(Image.open(tmp_path / "t.png")))


@pytest.mark.parametrize("command, preset, message", [
    (["sample"], "msgunet-512", "(CLI: `python -m sdk translate --image IMG`)"),
    (["translate", "--image", "{img}"], "progan-64", "(CLI: `python -m sdk sample --seed S`)"),
    (["translate", "--image", "{missing}"], "msgunet-512", "image file"),
    (["translate", "--image", "{square}"], "msgunet-512", "aspect ratios differ"),
    (["sample", "--interpolate", "1", "--steps", "1"], "progan-64", "steps must be >= 2"),
])
def test_errors_exit_2_without_traceback(small_bundle, tmp_path, command, preset, message):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "square.png")
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(tmp_path / "img.png")
    paths = {"img": tmp_path / "img.png", "missing": tmp_path / "nope.png", "square": tmp_path / "square.png"}
    args = [a.format(**paths) for a in command]
    out = tmp_path / "out.png"
    r = run("-m", "sdk", *args, "--bundle", str(small_bundle(preset)), "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_save_gif_is_atomic_and_checked(tmp_path):
    frames = [Image.new("RGB", (8, 6), (i * 60, 0, 255 - i * 60)) for i in range(4)]
    path = save_gif(frames, tmp_path / "a.gif", duration_ms=50)
    gif = Image.open(path)
    assert gif.n_frames == 4 and gif.info["duration"] == 50 and gif.info.get("loop") == 0
    before = path.read_bytes()
    with pytest.raises(SDKError, match="share one size"):
        save_gif([frames[0], Image.new("RGB", (4, 4))], path)
    with pytest.raises(SDKError, match="no frames"):
        save_gif([], path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]
