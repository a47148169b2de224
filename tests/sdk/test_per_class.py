"""Per-class latent control (GroupDNet): label-only sampling, resample, mix, morph,
encode and stored codes, the morph CLI, and errors on bundles without codes.

Everything runs through onnxruntime on the CI-size groupdnet-deepfashion bundle
(untrained, seeded weights), so the tests check the structural guarantees (which code
rows reach the graph), not trained-model image quality.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import SDKError, Synthesizer
from sdk.cli import main
from sdk.per_class import interpolate_codes, load_codes, save_codes
from tests.conftest import random_ids

NAME = "groupdnet-deepfashion"


@pytest.fixture(scope="module")
def s(small_bundle):
    return Synthesizer.from_pretrained(small_bundle(NAME), backend="onnxruntime", labels="model")


def _label(s, seed=0):
    return random_ids(s.bundle.resolution, s.bundle.num_classes, seed)


def _image(s, seed=0):
    h, w = s.bundle.resolution
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _px(img):
    return np.asarray(img, dtype=np.int16)


def test_label_only_call_is_deterministic_per_seed(s):
    label = _label(s)
    c, d = s.codes_shape
    assert (c, d) == (8, 32)  # 8 classes; 8 channels on the 2x2 start grid at CI size (128x128)
    a, b, other = s(label, seed=3), s(label, seed=3), s(label, seed=4)
    assert np.array_equal(_px(a), _px(b))
    assert not np.array_equal(_px(a), _px(other))
    codes = s.sample_codes(3)
    assert codes.shape == (c, d) and codes.dtype == np.float32
    assert np.array_equal(_px(s(label, codes=codes)), _px(a))
    assert np.array_equal(_px(s(label, codes=codes[None])), _px(a))
    with pytest.raises(SDKError, match=rf"codes must have shape \({c}, {d}\) or \(N, {c}, {d}\)"):
        s(label, codes=np.zeros((c, d + 1)))
    with pytest.raises(SDKError, match="per-class codes, not z= or style="):
        s(label, z=np.zeros(d))


def test_resample_changes_only_the_listed_classes_codes(s):
    label = _label(s)
    cls = int(np.bincount(label.ravel()).argmax())  # the largest class of the map
    img, codes = s.resample(label, [cls], seed=5, base=2, return_codes=True)
    base, fresh = s.sample_codes(2), s.sample_codes(5)
    others = [c for c in range(s.codes_shape[0]) if c != cls]
    assert np.array_equal(codes[others], base[others])  # every other class keeps its code
    assert np.array_equal(codes[cls], fresh[cls]) and not np.array_equal(codes[cls], base[cls])
    assert np.array_equal(_px(img), _px(s(label, codes=codes)))  # exactly these codes were rendered
    assert np.array_equal(_px(s.resample(label, [cls], seed=2, base=2)), _px(s(label, seed=2)))
    # default base: seed 0; an explicit (C, D) base is used as given
    assert np.array_equal(_px(s.resample(label, [cls], seed=0)), _px(s(label, seed=0)))
    _, again = s.resample(label, [cls], seed=5, base=base, return_codes=True)
    assert np.array_equal(again, codes)
    # pixels: report the inside/outside ratio of mean |change| (untrained weights: informative only)
    delta = np.abs(_px(img) - _px(s(label, codes=base))).mean(-1)
    inside, outside = delta[label == cls].mean(), delta[label != cls].mean()
    print(f"resample locality (untrained CI model): inside {inside:.2f}, outside {outside:.2f}, "
          f"ratio {inside / max(outside, 1e-9):.2f}")
    assert inside > 0
    with pytest.raises(SDKError, match=r"class ids are integers 0..7"):
        s.resample(label, [8], seed=1)


def test_mix_takes_each_class_from_its_reference(s):
    label, ref_label = _label(s, 0), _label(s, 1)
    present = np.unique(ref_label)
    c1, c2 = int(present[0]), int(present[-1])
    ref1, ref2 = _image(s, 1), _image(s, 2)
    img, codes = s.mix(label, {c1: (ref1, ref_label), c2: (ref2, ref_label)}, base=1, return_codes=True)
    mu1, mu2 = s.encode(ref1, ref_label), s.encode(ref2, ref_label)
    np.testing.assert_allclose(codes[c1], mu1[c1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(codes[c2], mu2[c2], rtol=1e-4, atol=1e-5)
    others = [c for c in range(s.codes_shape[0]) if c not in (c1, c2)]
    assert np.array_equal(codes[others], s.sample_codes(1)[others])
    assert np.array_equal(_px(img), _px(s(label, codes=codes)))
    absent = next(c for c in range(s.codes_shape[0]) if c not in present) if len(present) < 8 else None
    if absent is not None:
        with pytest.raises(SDKError, match=f"has no pixel of class {absent}"):
            s.mix(label, {absent: (ref1, ref_label)})


def test_morph_endpoints_are_the_encoded_images(s):
    la, lb = _label(s, 0), _label(s, 1)
    a, b = _image(s, 1), _image(s, 2)
    frames = s.morph(a, la, b, lb, steps=3)
    assert len(frames) == 3
    ends = [s(la, codes=s.encode(a, la)), s(la, codes=s.encode(b, lb))]
    for frame, want in zip((frames[0], frames[-1]), ends):
        assert np.abs(_px(frame) - _px(want)).max() <= 1  # batch-size rounding at most
    assert not np.array_equal(_px(frames[0]), _px(frames[1]))
    x, y = s.sample_codes(0), s.sample_codes(1)
    assert np.array_equal(interpolate_codes(x, y, 0.0), x) and np.array_equal(interpolate_codes(x, y, 1.0), y)
    mid = interpolate_codes(x, y, 0.5)
    np.testing.assert_allclose(np.linalg.norm(mid, axis=-1),
                               (np.linalg.norm(x, axis=-1) + np.linalg.norm(y, axis=-1)) / 2, rtol=1e-5)


def test_encode_store_and_decode_round_trip(s, tmp_path):
    label = _label(s)
    codes = s.encode(_image(s, 3), label)
    assert codes.shape == s.codes_shape and codes.dtype == np.float32
    path = save_codes(tmp_path / "codes.npy", codes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npy"]  # no temp files left
    loaded = load_codes(path)
    assert np.array_equal(loaded, codes)
    assert np.array_equal(_px(s(label, codes=loaded)), _px(s(label, codes=codes)))
    with pytest.raises(SDKError, match="encodes per class: use s.encode"):
        s.encode_style(_image(s))


def test_cli_morph_writes_a_gif(s, tmp_path, capsys):
    paths = {}
    for key, arr in {"la": _label(s, 0), "lb": _label(s, 1)}.items():
        paths[key] = tmp_path / f"{key}.png"
        Image.fromarray(arr.astype(np.uint8), "L").save(paths[key])
    for key, seed in {"a": 1, "b": 2}.items():
        paths[key] = tmp_path / f"{key}.png"
        Image.fromarray(_image(s, seed)).save(paths[key])
    args = ["morph", "--bundle", str(s.bundle.path), "--image-a", str(paths["a"]), "--label-a", str(paths["la"]),
            "--image-b", str(paths["b"]), "--label-b", str(paths["lb"]), "--steps", "4"]
    out = tmp_path / "frames.gif"
    assert main([*args, "--out", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == s.bundle.resolution[::-1]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "frames.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "give --out ending in .gif" in err
    bad = [*args, "--out", str(out)]
    bad[bad.index("--image-a") + 1] = str(tmp_path / "missing.png")
    assert main(bad) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bundles_without_codes_raise(small_bundle):
    plain = Synthesizer.from_pretrained(small_bundle("spade-cityscapes"), labels="model")
    label = np.zeros(plain.bundle.resolution, np.int64)
    msg = "has no per-class codes; resample/mix/morph need a GroupDNet bundle"
    for call in (lambda: plain.resample(label, [1], seed=0),
                 lambda: plain.mix(label, {1: np.zeros(8)}),
                 lambda: plain.morph(label, label, label, label),
                 lambda: plain.encode(np.zeros((8, 8, 3), np.uint8), label),
                 lambda: plain(label, codes=np.zeros((35, 8)))):
        with pytest.raises(SDKError, match=msg):
            call()
