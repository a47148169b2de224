"""sdk batch on a real local Ray (2 CPUs): exactly one image and one record per label,
with a worker killed mid-run, re-runs that skip finished work, and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HANG_S, ROOT

ray = pytest.importorskip("ray", reason="sdk batch needs the scale extra (ray[data,serve])")

DEMO = ROOT / "demo" / "spade-street"
N = 48


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    """N procedural street label maps in two sub-folders (outputs mirror the layout)."""
    from sdk.train.data.procedural import scene_label

    root = tmp_path_factory.mktemp("labels")
    for i in range(N):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(scene_label(i)).save(sub / f"scene_{i:03d}.png")
    return root


def outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.png"))


def temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_killed_worker_loses_nothing_and_duplicates_nothing(local_ray, labels, tmp_path):
    from sdk import Synthesizer
    from sdk.services.batch import item_seed, synthesize_dataset
    from sdk.services.common import bundle_sha

    out = tmp_path / "out"
    marker = tmp_path / "crashed"
    victim = "a/scene_013.png"
    report = synthesize_dataset(DEMO, labels, out, seed=5, workers=2, batch_size=4,
                                crash_once=(victim, str(marker)))
    # The worker really died: it wrote its pid into the marker, then os._exit'ed mid-batch.
    assert marker.is_file() and marker.read_text()
    assert report.total == N and report.written == N and report.skipped == 0 and not report.failed
    assert report.workers == 2
    pngs = outputs(out)
    assert len(pngs) == N and not temps(out)
    recs = records(out)
    assert len(recs) == N and len({r["label"] for r in recs}) == N
    assert {r["label"] for r in recs} == {p.relative_to(out).as_posix() for p in pngs}
    sha = bundle_sha(DEMO)
    workers = {r["worker"] for r in recs}
    assert len(workers) >= 2  # two actors at least (three when the killed one was restarted)
    for r in recs:
        assert r["bundle_sha"] == sha and r["global_seed"] == 5 and r["seed"] == item_seed(5, r["label"])
        assert r["backend"].startswith("onnxruntime") and r["ms"] > 0 and r["time"]
    # The images are the Synthesizer's, the victim's included.
    s = Synthesizer.from_pretrained(DEMO)
    for key in (victim, "b/scene_000.png"):
        expected = np.asarray(s(labels / key, seed=item_seed(5, key)), dtype=np.int16)
        got = np.asarray(Image.open(out / key), dtype=np.int16)
        assert np.abs(got - expected).max() <= 1  # thread counts differ: at most one level


def test_rerun_skips_finished_and_redoes_the_rest(local_ray, labels, tmp_path):
    from sdk.services.batch import synthesize_dataset

    out = tmp_path / "out"
    first = synthesize_dataset(DEMO, labels, out, seed=1, workers=2)
    assert first.written == N
    before = {p: p.stat().st_mtime_ns for p in outputs(out)}
    again = synthesize_dataset(DEMO, labels, out, seed=1, workers=2)
    assert again.written == 0 and again.skipped == N
    assert {p: p.stat().st_mtime_ns for p in outputs(out)} == before

    # A run cut short: two images never written, one written but not recorded (the driver
    # died between the two), and a torn last line in the records.
    lost = [out / "a" / "scene_001.png", out / "b" / "scene_002.png"]
    for p in lost:
        p.unlink()
    unrecorded = "b/scene_004.png"
    kept = [r for r in records(out) if r["label"] != unrecorded]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"label": "b/sce')
    third = synthesize_dataset(DEMO, labels, out, seed=1, workers=2)
    assert third.written == 3 and third.skipped == N - 3
    recs = records(out)
    assert len(recs) == N and len({r["label"] for r in recs}) == N and len(outputs(out)) == N
    assert all(p.is_file() for p in lost)
    assert [r["label"] for r in recs] == sorted(r["label"] for r in recs)  # a finished run leaves them sorted

    with pytest.raises(Exception, match="made with --seed 1"):
        synthesize_dataset(DEMO, labels, out, seed=2, workers=2)


def test_seeds_follow_the_relative_path_not_the_folder(labels, tmp_path):
    """Models without a latent ignore seeds, so check the rule itself and that a copy of
    the data set elsewhere gives the same records."""
    from sdk.services.batch import item_seed, list_labels, plan

    root, paths = list_labels(labels)
    items = plan(root, paths, tmp_path, 7)
    assert [it.key for it in items][:2] == ["a/scene_001.png", "a/scene_003.png"]
    assert all(it.seed == item_seed(7, it.key) for it in items)
    assert len({it.seed for it in items}) == N and item_seed(7, "x") != item_seed(8, "x")

    lst = tmp_path / "list.txt"
    lst.write_text("# two maps\n" + "\n".join(str(p) for p in paths[:2]) + "\n")
    root2, paths2 = list_labels(lst)
    assert paths2 == paths[:2]
    root3, paths3 = list_labels(str(labels / "*" / "scene_00*.png"))
    assert len(paths3) == 10 and root3 == labels.resolve()


def test_bad_labels_are_reported_and_the_rest_done(local_ray, tmp_path):
    from sdk.services.batch import synthesize_dataset

    src = tmp_path / "labels"
    src.mkdir()
    Image.open(ROOT / "samples" / "street_1_label.png").save(src / "good.png")
    Image.fromarray(np.zeros((64, 64), np.uint8), "L").save(src / "small.png")
    report = synthesize_dataset(DEMO, src, tmp_path / "out", workers=1)
    assert report.written == 1 and len(report.failed) == 1
    label, why = report.failed[0]
    assert label == "small.png" and "this model takes 256x512 maps" in why
    assert not (tmp_path / "out" / "small.png").exists()
    recs = {r["label"]: r for r in records(tmp_path / "out")}  # the failure has its record too
    assert set(recs) == {"good.png", "small.png"} and "error" not in recs["good.png"]
    assert recs["small.png"]["error"] == why and "out" not in recs["small.png"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdk", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_S)


def test_cli_on_the_running_cluster(local_ray, labels, tmp_path):
    out = tmp_path / "cli"
    r = run_cli("batch", "--bundle", str(DEMO), "--input", str(labels / "a" / "*.png"), "--out", str(out),
                "--address", local_ray, "--workers", "1", "--batch-size", "6")
    assert r.returncode == 0, r.stderr
    assert f"wrote {N // 2} images" in r.stdout and "images/s" in r.stdout
    assert len(outputs(out)) == N // 2 and len(records(out)) == N // 2


def test_cli_bad_input_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("batch", "--bundle", str(DEMO), "--input", str(empty), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: no label maps (*.png) in folder")
    r = run_cli("batch", "--bundle", str(DEMO), "--labels", str(empty), "--out", str(tmp_path / "o"))  # the old flag
    assert r.returncode == 2 and r.stderr.strip().startswith("error: no label maps (*.png) in folder")
    r = run_cli("batch", "--bundle", str(tmp_path / "nope"), "--input", str(empty), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
