"""One word for the label convention switch, one label reader.

``label_format="dataset" | "ids"`` (CLI ``--label-format``) everywhere; the old ``labels=``,
its value ``"model"`` and ``--labels model`` still work for one version, with a
DeprecationWarning naming the caller's line (a one-line notice at the CLI). The intake is the
one reader of label maps; ``read_label``, ``read_ids`` and ``read_values`` are deprecated
aliases that give what they gave.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from PIL import Image

from sdk import LabelError, Synthesizer
from sdk import labels as label_files
from sdk.conventions import check_label_format, check_mode
from tests.conftest import random_ids

PRESET = "oasis-coco"  # COCO-Stuff as OASIS reads it: file value v is model id v + 1, so the switch shows


@pytest.fixture(scope="module")
def bundle(small_bundle):
    return small_bundle(PRESET)


@pytest.fixture(scope="module")
def ids(bundle):
    s = Synthesizer.from_pretrained(bundle, backend="onnxruntime")
    return random_ids(s.bundle.resolution, 182, 4).astype(np.uint8)  # file values 0..181: ids 1..182


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_label_format_switches_the_convention(bundle, ids):
    as_ids = Synthesizer.from_pretrained(bundle, backend="onnxruntime", label_format="ids")
    as_files = Synthesizer.from_pretrained(bundle, backend="onnxruntime")
    assert (as_ids.label_format, as_files.label_format) == ("ids", "dataset")
    assert np.array_equal(as_ids.intake.read(ids).ids, ids)
    assert np.array_equal(as_files.intake.read(ids).ids, ids.astype(np.int32) + 1)
    assert np.array_equal(as_files.intake.read(ids, label_format="ids").ids, ids)  # per map, too
    with pytest.raises(LabelError, match=r"^label_format must be 'dataset' .* or 'ids' .*got 'nope'$"):
        Synthesizer.from_pretrained(bundle, backend="onnxruntime", label_format="nope")


def test_the_old_names_warn_at_the_callers_line_and_still_work(bundle, ids):
    new = Synthesizer.from_pretrained(bundle, backend="onnxruntime", label_format="ids")
    for kwargs in ({"labels": "model"}, {"label_format": "model"}, {"labels": "model", "label_format": "ids"}):
        with pytest.warns(DeprecationWarning) as caught:
            old = Synthesizer.from_pretrained(bundle, backend="onnxruntime", **kwargs)
        assert len(caught) == 1 and caught[0].filename == __file__, [(w.filename, w.message) for w in caught]
        assert old.label_format == "ids" and np.array_equal(_px(old(ids, seed=1)), _px(new(ids, seed=1)))
    with pytest.warns(DeprecationWarning, match="use .label_format"):
        assert old.labels == "model" and old.intake.labels == "model"  # the old values, as before
    with pytest.warns(DeprecationWarning, match="use label_format='dataset'"):
        old_read = new.intake.read(ids, labels="dataset")
    assert np.array_equal(old_read.ids, new.intake.read(ids, label_format="dataset").ids)
    with pytest.raises(LabelError, match="give label_format= alone"):
        Synthesizer.from_pretrained(bundle, backend="onnxruntime", label_format="ids", labels="dataset")
    with pytest.warns(DeprecationWarning):
        assert check_mode("model") == "ids" and check_label_format("dataset", "model") == "ids"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        assert check_label_format("ids") == "ids" and new.label_format == "ids"


def test_one_label_reader_and_its_deprecated_aliases(bundle, ids, tmp_path):
    s = Synthesizer.from_pretrained(bundle, backend="onnxruntime")
    path = tmp_path / "label.png"
    Image.fromarray(ids, "L").save(path)
    read = s.intake.read(path)
    with pytest.warns(DeprecationWarning, match=r"use s.intake.read\(x\).ids"):
        assert np.array_equal(s.read_label(path), read.ids)
    with pytest.warns(DeprecationWarning, match=r"read label maps with s.intake.read\(x\)"):
        raw = label_files.read_ids(path)
    with pytest.warns(DeprecationWarning, match=r"read label maps with s.intake.read\(x\)"):
        values, coloured = label_files.read_values(path)
    assert np.array_equal(raw, ids) and np.array_equal(values, ids) and not coloured
    assert np.array_equal(label_files.MapSource(path).values(), ids)  # raw values without a model


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sdk" and "deprecated" in r.getMessage()]


def test_cli_label_format_and_the_old_flag(bundle, ids, tmp_path, caplog, capsys, monkeypatch):
    from sdk.services.cli import main

    monkeypatch.setattr("sdk.notices._seen", set())  # each notice is said once per process: say it here
    Image.fromarray(ids, "L").save(tmp_path / "label.png")
    args = ["synthesize", "--bundle", str(bundle), "--label", str(tmp_path / "label.png"), "--seed", "2",
            "--backend", "onnxruntime"]
    with caplog.at_level(logging.WARNING, logger="sdk"):
        assert main([*args, "--label-format", "ids", "--out", str(tmp_path / "new.png")]) == 0
        assert not _notices(caplog)
        assert main([*args, "--labels", "model", "--out", str(tmp_path / "old.png")]) == 0
    assert _notices(caplog) == ["sdk: --labels model is deprecated (it goes in the next version): use "
                                "--label-format ids"]
    assert np.array_equal(_px(Image.open(tmp_path / "old.png")), _px(Image.open(tmp_path / "new.png")))
    with pytest.raises(SystemExit) as exit_:  # a usage error: argparse's one line, status 2
        main([*args, "--label-format", "model", "--out", str(tmp_path / "x.png")])
    assert exit_.value.code == 2 and "invalid choice: 'model'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--input", "maps"], ("maps", "dataset")),
    (["--input", "maps", "--label-format", "ids"], ("maps", "ids")),
    (["--input", "maps", "--labels", "model"], ("maps", "ids")),  # the old switch
    (["--labels", "maps"], ("maps", "dataset")),  # the old folder flag, before --input
])
def test_batch_flags(argv, expected):
    from sdk.cli import build_parser
    from sdk.services.cli import _batch_inputs, add_doors

    args = build_parser(add_doors).parse_args(["batch", "--bundle", "b", "--out", "o", *argv])
    assert _batch_inputs(args) == expected


def test_serve_options_take_the_old_name(bundle):
    from sdk.services.serve import ServeOptions

    with pytest.warns(DeprecationWarning, match="use label_format"):
        opts = ServeOptions(labels="model")
    assert (opts.label_format, opts.labels) == ("ids", None)
    assert ServeOptions(label_format="ids").label_format == "ids"
    with pytest.raises(LabelError, match="label_format must be"):
        ServeOptions(label_format="model ids")
