"""Per-class latent control, one API for GroupDNet and OASIS: label-only sampling, codes,
resample, per-class interpolation between two seeds, stored codes and the resample CLI;
GroupDNet's encoder calls (mix, morph, encode); and one-line refusals where a bundle has
no per-class codes (DP-SIMS, label-only SPADE) or no encoder (OASIS).

Everything runs through onnxruntime on CI-size bundles (untrained, seeded weights), so the
tests check the structural guarantees (which code rows reach the graph), not trained-model
image quality; how far a redrawn class spreads in pixels is pinned in
tests/benchmarks/test_resample_locality.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import SDKError, Synthesizer
from sdk.cli import main
from sdk.per_class import interpolate_codes, load_codes, save_codes
from tests.conftest import random_ids

CODES = {"groupdnet-deepfashion": (8, 32),  # 8 channels on the 2x2 start grid at CI size (128x128)
         "oasis-ade20k": (151, 64)}  # OASIS' 64-d noise, per class
GROUPDNET = "groupdnet-deepfashion"


@pytest.fixture(scope="module", params=list(CODES))
def s(request, small_bundle):
    return Synthesizer.from_pretrained(small_bundle(request.param), backend="onnxruntime", label_format="ids")


@pytest.fixture(scope="module")
def g(small_bundle):
    return Synthesizer.from_pretrained(small_bundle(GROUPDNET), backend="onnxruntime", label_format="ids")


def _label(s, seed=0):
    return random_ids(s.bundle.resolution, s.bundle.num_classes, seed)


def _image(s, seed=0):
    h, w = s.bundle.resolution
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _px(img):
    return np.asarray(img, dtype=np.int16)


def _largest(label):
    return int(np.bincount(label.ravel()).argmax())


def test_label_only_call_is_deterministic_per_seed(s):
    label = _label(s)
    c, d = s.codes_shape
    assert s.has_codes and s.no_codes_reason is None and (c, d) == CODES[s.bundle.name]
    a, b, other = s(label, seed=3), s(label, seed=3), s(label, seed=4)
    assert np.array_equal(_px(a), _px(b))
    assert not np.array_equal(_px(a), _px(other))
    codes = s.sample_codes(3)
    assert codes.shape == (c, d) and codes.dtype == np.float32
    # a seed draws as the model was trained: GroupDNet a code per class, OASIS one vector for all
    assert (len(np.unique(codes, axis=0)) == 1) == (s.bundle.family == "oasis")
    assert np.array_equal(_px(s(label, codes=codes)), _px(a))
    assert np.array_equal(_px(s(label, codes=codes[None])), _px(a))
    with pytest.raises(SDKError, match=rf"codes must have shape \({c}, {d}\) or \(N, {c}, {d}\)"):
        s(label, codes=np.zeros((c, d + 1)))
    if s.bundle.family == "oasis":  # z= is the official single vector, given to every class
        assert np.array_equal(_px(s(label, z=codes[0])), _px(a))
        with pytest.raises(SDKError, match="has no style encoder"):
            s(label, style=_image(s))
    else:
        with pytest.raises(SDKError, match="per-class codes, not z= or style="):
            s(label, z=np.zeros(d))


def test_resample_changes_only_the_listed_classes_codes(s):
    label = _label(s)
    cls = _largest(label)
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
    assert np.array_equal(s.resample_codes([cls], seed=5, base=2), codes)  # the codes alone, for apps
    assert np.abs(_px(img) - _px(s(label, codes=base)))[label == cls].mean() > 0  # the class is redrawn
    c = s.codes_shape[0]
    with pytest.raises(SDKError, match=rf"class ids are integers 0..{c - 1}"):
        s.resample(label, [c], seed=1)
    with pytest.raises(SDKError, match="classes is empty"):
        s.resample(label, [], seed=1)


def test_resample_of_an_absent_class_says_so(s, caplog):
    label = _label(s)
    absent = 1
    label[label == absent] = 0
    with caplog.at_level("WARNING", logger="sdk"):
        img = s.resample(label, [absent], seed=5)
    lines = [r.getMessage() for r in caplog.records if "no pixel" in r.getMessage()]
    assert lines == [f"sdk: {s.bundle.name}: class {absent} has no pixel in this label map: no region of it to redraw"]
    if s.bundle.family == "oasis":  # no pixel reads the code of an absent class (GroupDNet's first layers do)
        assert np.array_equal(_px(img), _px(s(label, seed=0)))


def test_interpolate_one_class_between_two_seeds(s):
    label = _label(s)
    cls = _largest(label)
    frames = s.interpolate(label, seed_a=1, seed_b=6, classes=[cls], steps=3)
    assert len(frames) == 3
    assert np.abs(_px(frames[0]) - _px(s(label, seed=1))).max() <= 1  # batch-size rounding at most
    assert np.abs(_px(frames[-1]) - _px(s.resample(label, [cls], seed=6, base=1))).max() <= 1
    a, b = s.sample_codes(1), s.sample_codes(6)
    mid = a.copy()
    mid[cls] = interpolate_codes(a[cls], b[cls], 0.5)
    middle = s([label] * 3, codes=np.stack([a, mid, a]))[1]  # the same batch size as the frames
    assert np.array_equal(_px(frames[1]), _px(middle))
    # every class: from seed 1's image to seed 6's
    whole = s.interpolate(label, seed_a=1, seed_b=6, steps=2)
    assert np.abs(_px(whole[-1]) - _px(s(label, seed=6))).max() <= 1
    with pytest.raises(SDKError, match="steps must be >= 2"):
        s.interpolate(label, seed_a=1, seed_b=6, classes=[cls], steps=1)


def test_codes_store_and_render_round_trip(s, tmp_path):
    label = _label(s)
    _, codes = s.resample(label, [_largest(label)], seed=4, return_codes=True)
    path = save_codes(tmp_path / "codes.npy", codes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npy"]  # no temp files left
    loaded = load_codes(path)
    assert np.array_equal(loaded, codes)
    assert np.array_equal(_px(s(label, codes=loaded)), _px(s(label, codes=codes)))


def test_cli_resample(s, tmp_path, capsys):
    label = _label(s)
    cls = _largest(label)
    Image.fromarray(label.astype(np.uint8), "L").save(tmp_path / "label.png")
    args = ["resample", "--bundle", str(s.bundle.path), "--label", str(tmp_path / "label.png"), "--label-format", "ids",
            "--classes", f"{cls}", "--seed", "5", "--backend", "onnxruntime"]
    assert main([*args, "--out", str(tmp_path / "out.png"), "--save-codes", str(tmp_path / "codes.npy")]) == 0
    want, codes = s.resample(label, [cls], seed=5, return_codes=True)
    assert np.array_equal(_px(Image.open(tmp_path / "out.png")), _px(want))
    assert np.array_equal(load_codes(tmp_path / "codes.npy"), codes)
    # the saved codes as the base of a second edit, and a GIF of the class moving between seeds
    assert main([*args[:-2], "--seed", "7", "--base-codes", str(tmp_path / "codes.npy"),
                 "--out", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(_px(Image.open(tmp_path / "again.png")), _px(s.resample(label, [cls], seed=7, base=codes)))
    assert main([*args, "--steps", "3", "--out", str(tmp_path / "frames.gif")]) == 0
    with Image.open(tmp_path / "frames.gif") as gif:
        assert gif.n_frames == 3 and gif.size == s.bundle.resolution[::-1]
    capsys.readouterr()
    c = s.codes_shape[0]
    names = s.bundle.label.get("classes")
    if names:  # a class name reads as its id (ADE20K's names; the DeepFashion bundle has none)
        named = list(args)
        named[named.index("--classes") + 1] = names[cls]
        assert main([*named, "--out", str(tmp_path / "named.png")]) == 0
        assert np.array_equal(_px(Image.open(tmp_path / "named.png")), _px(want))
    capsys.readouterr()
    for bad, message in ((["--classes", "nope"], "'nope', which is not a class name of"),
                         (["--classes", str(c)], f"class ids are integers 0..{c - 1}"),
                         (["--seed", "-1"], "seed must be a non-negative integer")):
        argv = list(args)
        argv[argv.index(bad[0]) + 1] = bad[1]
        assert main([*argv, "--out", str(tmp_path / "bad.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "bad.png").exists()


# -- GroupDNet's encoder -------------------------------------------------------------------
def test_mix_takes_each_class_from_its_reference(g):
    label, ref_label = _label(g, 0), _label(g, 1)
    present = np.unique(ref_label)
    c1, c2 = int(present[0]), int(present[-1])
    ref1, ref2 = _image(g, 1), _image(g, 2)
    img, codes = g.mix(label, {c1: (ref1, ref_label), c2: (ref2, ref_label)}, base=1, return_codes=True)
    mu1, mu2 = g.encode(ref1, ref_label), g.encode(ref2, ref_label)
    np.testing.assert_allclose(codes[c1], mu1[c1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(codes[c2], mu2[c2], rtol=1e-4, atol=1e-5)
    others = [c for c in range(g.codes_shape[0]) if c not in (c1, c2)]
    assert np.array_equal(codes[others], g.sample_codes(1)[others])
    assert np.array_equal(_px(img), _px(g(label, codes=codes)))
    absent = next(c for c in range(g.codes_shape[0]) if c not in present) if len(present) < 8 else None
    if absent is not None:
        with pytest.raises(SDKError, match=f"has no pixel of class {absent}"):
            g.mix(label, {absent: (ref1, ref_label)})


def test_morph_endpoints_are_the_encoded_images(g):
    la, lb = _label(g, 0), _label(g, 1)
    a, b = _image(g, 1), _image(g, 2)
    frames = g.morph(a, la, b, lb, steps=3)
    assert len(frames) == 3
    ends = [g(la, codes=g.encode(a, la)), g(la, codes=g.encode(b, lb))]
    for frame, want in zip((frames[0], frames[-1]), ends):
        assert np.abs(_px(frame) - _px(want)).max() <= 1  # batch-size rounding at most
    assert not np.array_equal(_px(frames[0]), _px(frames[1]))
    x, y = g.sample_codes(0), g.sample_codes(1)
    assert np.array_equal(interpolate_codes(x, y, 0.0), x) and np.array_equal(interpolate_codes(x, y, 1.0), y)
    mid = interpolate_codes(x, y, 0.5)
    np.testing.assert_allclose(np.linalg.norm(mid, axis=-1),
                               (np.linalg.norm(x, axis=-1) + np.linalg.norm(y, axis=-1)) / 2, rtol=1e-5)


def test_encode_store_and_decode_round_trip(g, tmp_path):
    label = _label(g)
    codes = g.encode(_image(g, 3), label)
    assert codes.shape == g.codes_shape and codes.dtype == np.float32
    assert np.array_equal(load_codes(save_codes(tmp_path / "codes.npy", codes)), codes)
    # a per-class pipeline has no encode_style: the AttributeError points to encode
    with pytest.raises(AttributeError, match="encodes per class: use s.encode"):
        g.encode_style(_image(g))


def test_cli_morph_writes_a_gif(g, tmp_path, capsys):
    paths = {}
    for key, arr in {"la": _label(g, 0), "lb": _label(g, 1)}.items():
        paths[key] = tmp_path / f"{key}.png"
        Image.fromarray(arr.astype(np.uint8), "L").save(paths[key])
    for key, seed in {"a": 1, "b": 2}.items():
        paths[key] = tmp_path / f"{key}.png"
        Image.fromarray(_image(g, seed)).save(paths[key])
    args = ["morph", "--bundle", str(g.bundle.path), "--image-a", str(paths["a"]), "--label-a", str(paths["la"]),
            "--image-b", str(paths["b"]), "--label-b", str(paths["lb"]), "--steps", "4"]
    out = tmp_path / "frames.gif"
    assert main([*args, "--out", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == g.bundle.resolution[::-1]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "frames.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "give --out ending in .gif" in err
    bad = [*args, "--out", str(out)]
    bad[bad.index("--image-a") + 1] = str(tmp_path / "missing.png")
    assert main(bad) == 2
    assert "does not exist" in capsys.readouterr().err


# -- one-line refusals ---------------------------------------------------------------------
def test_oasis_has_no_encoder(small_bundle):
    o = Synthesizer.from_pretrained(small_bundle("oasis-ade20k"), label_format="ids")
    label, photo = _label(o), _image(o)
    for call in (lambda: o.encode(photo, label),
                 lambda: o.mix(label, {1: (photo, label)}),
                 lambda: o.morph(photo, label, photo, label)):
        with pytest.raises(SDKError, match=r"has no encoder \(OASIS draws its noise; it cannot encode a photo\)"):
            call()
    # a code given as an array needs no encoder
    img, codes = o.mix(label, {_largest(label): np.ones(64, np.float32)}, return_codes=True)
    assert np.array_equal(codes[_largest(label)], np.ones(64)) and np.array_equal(_px(img), _px(o(label, codes=codes)))


@pytest.mark.parametrize("name, message", [
    ("dpsims-ade20k", "DP-SIMS draws one global z, which an MLP maps to tokens that every pixel attends to"),
    ("spade-cityscapes", "has no per-class codes; resample/mix/morph need a GroupDNet or OASIS bundle")])
def test_bundles_without_codes_refuse_in_one_line(small_bundle, name, message):
    plain = Synthesizer.from_pretrained(small_bundle(name), label_format="ids")
    label = np.zeros(plain.bundle.resolution, np.int64)
    assert not plain.has_codes and message in plain.no_codes_reason
    # the per-class calls are not there at all: AttributeError, naming who has them and why not here
    for call in (lambda: plain.resample(label, [1], seed=0),
                 lambda: plain.sample_codes(0),
                 lambda: plain.mix(label, {1: np.zeros(8)}),
                 lambda: plain.morph(label, label, label, label),
                 lambda: plain.encode(np.zeros((8, 8, 3), np.uint8), label)):
        with pytest.raises(AttributeError) as err:
            call()
        assert "\n" not in str(err.value) and "(PerClassLabelToImage)" in str(err.value)
        assert message in str(err.value) or "has no per-class codes" in str(err.value)
    # arguments of calls the pipeline has stay SDKErrors
    for call in (lambda: plain.interpolate(label, seed_a=0, seed_b=1, classes=[1]),
                 lambda: plain(label, codes=np.zeros((35, 8)))):
        with pytest.raises(SDKError) as err:
            call()
        assert "\n" not in str(err.value)
        assert message in str(err.value) or "has no per-class codes" in str(err.value)
