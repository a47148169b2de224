"""The edit benchmark end to end at CI size (one timed round), and its edit generators."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks import edit_bench
from benchmarks.edits import FRACTIONS, KINDS, block_map, changed_fraction, make_edit


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size, classes", [((256, 256), 151), ((128, 128), 8), ((64, 128), 35)])
def test_edits_paint_their_fraction_in_one_class(kind, size, classes):
    ids = block_map(size, classes, seed=0)
    for fraction in FRACTIONS:
        new = make_edit(kind, ids, fraction, classes, seed=1)
        assert new.dtype == ids.dtype and new.shape == ids.shape
        painted = np.unique(new[new != ids])
        assert painted.size == 1  # one class, as a brush or a fill paints
        got = changed_fraction(ids, new)
        if np.unique(ids).size < classes:  # a class absent from the map: every painted pixel changes
            assert got == pytest.approx(fraction, rel=0.25)  # a stroke ends within one brush step
        else:  # all present: the rarest class is painted, where it lay nothing changes
            assert 0.5 * fraction < got <= 1.25 * fraction
        assert np.array_equal(make_edit(kind, ids, fraction, classes, seed=1), new)  # seeded


def test_edit_bench_runs_at_ci_size(small_bundle, tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    os.symlink(small_bundle("spade-ade20k"), bundles / "spade-ade20k-ci")
    out = tmp_path / "out"
    assert edit_bench.main(["--presets", "spade-ade20k", "--size", "ci", "--runs", "1", "--warmup", "0",
                            "--threads", "1", "--fractions", "0.02,0.2", "--out", str(out),
                            "--bundles", str(bundles), "--note", "CI smoke run"]) == 0
    report = json.loads((out / "results.json").read_text())
    rows = report["rows"]
    assert {(r["map"], r["edit"], r["target"]) for r in rows} == {
        (m, k, f) for m in ("blocks", "sample") for k in KINDS for f in (0.02, 0.2)}
    for r in rows:
        assert r["max_levels"] <= 1 and r["rel_l2"] < 1e-5  # every incremental image against its full pass
        assert r["full_ms"] > 0 and r["incremental_ms"] > 0 and r["speedup"] == r["full_ms"] / r["incremental_ms"]
        assert r["speedup_cpu"] == r["full_cpu_ms"] / r["incremental_cpu_ms"] and 0 < r["recomputed"] <= 1
        if r["target"] == 0.02:  # a 20% edit may reach more than full_above of every layer's tiles
            assert r["updates"] == ["incremental"] and r["recomputed"] < 1
    assert report["meta"]["runs"] == 1 and report["meta"]["threads"] == 1 and report["meta"]["note"] == "CI smoke run"
    md = (out / "results.md").read_text()
    assert "CI smoke run" in md and md.count("| spade-ade20k |") == len(rows) and "Exactness" in md
    assert (out / "speedup.png").stat().st_size > 1000
    assert md.count("| spade-ade20k (") == 2  # the summary: one line per map
    (out / "results.md").unlink()
    assert edit_bench.main(["--report", str(out / "results.json")]) == 0 and (out / "results.md").read_text() == md
