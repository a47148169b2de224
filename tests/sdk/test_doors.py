"""One label file, one image, whichever door it comes in by.

For every convention in ``sdk/conventions.py`` (and an instance-less and a model-ids case) a
file in that dataset's own format -- its own size, its unlabeled value, 8- or 16-bit, a
palette PNG where the dataset has one, an instance map where the family takes one -- made
here by code, goes through each door with the same seed: the Python API (the reference;
path, bytes and PIL image alike), the CLI, ``sdk batch`` on a local Ray, ``sdk serve`` over
HTTP on loopback, and the app's synthesis callback. Every door must give the API's pixels
exactly (one inference thread everywhere: thread counts may round a level apart). A bad file
of each cell gets the API's one line at every door: CLI exit 2, the batch error record (the
good file of the same run still made), HTTP 400, the app's message.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from sdk import LabelError, SDKError, Synthesizer
from sdk.conventions import ADE20K_MINUS_ONE, CONVENTIONS
from tests.conftest import HANG_S, ROOT

ray = pytest.importorskip("ray", reason="sdk batch and serve need the scale extra (ray[data,serve])")

SEED = 0  # the batch run's global seed; each file's seed is item_seed(SEED, its key)


# -- files in each dataset's own format -------------------------------------------------------
def _blocks(h: int, w: int, values: list[int], cell: int, seed: int) -> np.ndarray:
    """A map of ``cell``-sized blocks drawn from ``values`` (regions, not noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(np.asarray(values), (-(-h // cell), -(-w // cell)))
    return np.kron(coarse, np.ones((cell, cell), np.int64))[:h, :w]


def _save(arr: np.ndarray, path: Path, mode: str | None = None, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    if palette is not None:
        img.putpalette(palette)
    img.save(path)
    return path


@dataclass
class Files:
    root: Path  # the batch run's input folder
    label: Path  # the good file
    instance: Path | None
    bad: Path  # a file whose values the convention refuses
    bad_instance: Path | None
    instances: str | None  # sdk batch --instances


def cityscapes(root: Path, with_instances: bool = True, bad_value: int = 34) -> Files:
    """*_gtFine_labelIds.png (8-bit, 1024x2048, 0 = unlabeled) and *_gtFine_instanceIds.png
    (16-bit: class * 1000 + k for instances), side by side in a city folder."""
    h, w = 1024, 2048
    label = _blocks(h, w, [0, 1, 4, 7, 8, 11, 17, 21, 23, 24, 26, 33], 64, 1).astype(np.uint8)
    cells = np.kron(np.arange(16 * 32).reshape(16, 32), np.ones((64, 64), np.int64))
    inst = np.where(np.isin(label, (24, 26, 33)), label.astype(np.int64) * 1000 + cells % 7, label).astype(np.uint16)
    city = root / "frankfurt"
    good = _save(label, city / "frankfurt_000000_000294_gtFine_labelIds.png", "L")
    bad_label = label.copy()
    bad_label[512:640, 1024:1280] = bad_value  # inside 0..34 of the model, not a labelIds value
    bad = _save(bad_label, city / "frankfurt_000001_000000_gtFine_labelIds.png", "L")
    gi = bi = None
    if with_instances:
        gi = _save(inst, city / "frankfurt_000000_000294_gtFine_instanceIds.png")
        bi = _save(inst, city / "frankfurt_000001_000000_gtFine_instanceIds.png")
        assert Image.open(gi).mode.startswith("I;16")
    return Files(root, good, gi, bad, bi, "{prefix}_instanceIds.png" if with_instances else None)


def ade20k(root: Path, bad_value: int = 151) -> Files:
    """ADEChallengeData2016 annotations: 8-bit, the image's own size (here 512x683), 0 = other."""
    label = _blocks(512, 683, [0, 1, 2, 3, 5, 12, 21, 77, 150], 32, 2).astype(np.uint8)
    good = _save(label, root / "ADE_val_00000001.png", "L")
    bad_label = label.copy()
    bad_label[:128, :128] = bad_value
    return Files(root, good, None, _save(bad_label, root / "ADE_val_00000002.png", "L"), None, None)


def coco(root: Path, with_instances: bool, bad_value: int = 182) -> Files:
    """COCO-Stuff val2017 maps (SPADE's layout: val_label/ and val_inst/ with the same names):
    8-bit 426x640 label, 255 = unlabeled; 8-bit instance map."""
    label = _blocks(426, 640, [0, 1, 2, 23, 56, 105, 156, 181, 255], 32, 3).astype(np.uint8)
    inst = _blocks(426, 640, list(range(12)), 48, 4).astype(np.uint8)
    good = _save(label, root / "val_label" / "000000000139.png", "L")
    bad_label = label.copy()
    bad_label[100:228, 200:328] = bad_value
    bad = _save(bad_label, root / "val_label" / "000000000285.png", "L")
    gi = bi = None
    if with_instances:
        gi = _save(inst, root / "val_inst" / "000000000139.png", "L")
        bi = _save(inst, root / "val_inst" / "000000000285.png", "L")
    return Files(root / "val_label", good, gi, bad, bi, str(root / "val_inst") if with_instances else None)


def deepfashion(root: Path, bad_value: int = 8) -> Files:
    """SMIS' DeepFashion parsing maps: palette PNGs (0..7), 256x176."""
    label = _blocks(256, 176, list(range(8)), 16, 5).astype(np.uint8)
    palette = sum(([(36 * i) % 256, (255 - 30 * i) % 256, (90 * i) % 256] for i in range(256)), [])
    good = _save(label, root / "img_00000001.png", "P", palette)
    assert Image.open(good).mode == "P"
    bad_label = label.copy()
    bad_label[64:128, 64:128] = bad_value
    return Files(root, good, None, _save(bad_label, root / "img_00000002.png", "P", palette), None, None)


def model_ids(root: Path, bad_value: int = 183) -> Files:
    """A map of model ids (OASIS COCO: 0 = unlabeled .. 182), 16-bit, twice the model's size."""
    label = _blocks(512, 512, [0, 1, 24, 57, 106, 182], 32, 6).astype(np.uint16)
    good = _save(label, root / "painted_1.png")
    assert Image.open(good).mode.startswith("I;16")
    bad_label = label.copy()
    bad_label[:64, :64] = bad_value
    return Files(root, good, None, _save(bad_label, root / "painted_2.png"), None, None)


@dataclass(frozen=True)
class Cell:
    id: str
    convention: str
    preset: str
    make: Callable[[Path], Files]
    label_format: str = "dataset"


CELLS = [
    Cell("cityscapes", "cityscapes/labelIds", "spade-cityscapes", cityscapes),
    Cell("cityscapes-no-instances", "cityscapes/labelIds", "spade-cityscapes", lambda r: cityscapes(r, False)),
    Cell("ade20k", "ade20k/raw", "spade-ade20k", ade20k),
    Cell("ade20k-minus-one", "ade20k/minus-one", "spade-ade20k", lambda r: ade20k(r, 200)),
    Cell("coco-spade", "coco-stuff/spade", "spade-coco", lambda r: coco(r, True)),
    Cell("coco-oasis", "coco-stuff/oasis", "oasis-coco", lambda r: coco(r, False, 200)),
    Cell("deepfashion", "deepfashion/cihp", "groupdnet-deepfashion", deepfashion),
    Cell("oasis-model-ids", "coco-stuff/oasis", "oasis-coco", model_ids, label_format="ids"),
]


def test_every_convention_has_a_cell():
    assert {c.convention for c in CELLS} == set(CONVENTIONS)


@dataclass
class Case:
    cell: Cell
    bundle: Path
    files: Files
    key: str  # the good file's path relative to the batch input root
    seed: int
    image: np.ndarray  # the API's image of the good file
    bad_line: str  # the API's one line for the bad file
    tmp: Path


@pytest.fixture(scope="module", params=CELLS, ids=[c.id for c in CELLS])
def case(request, small_bundle, tmp_path_factory) -> Case:
    from sdk.services.batch import item_seed

    cell: Cell = request.param
    tmp = tmp_path_factory.mktemp(cell.id)
    bundle = small_bundle(cell.preset)
    if cell.convention == "ade20k/minus-one":  # a checkpoint of this SDK's trainer before 0.2
        bundle = _with_convention(bundle, tmp / "bundle", ADE20K_MINUS_ONE)
    files = cell.make(tmp / "in")
    key = files.label.relative_to(files.root).as_posix()
    seed = item_seed(SEED, key)
    api = Synthesizer.from_pretrained(bundle, backend="onnxruntime", threads=1, label_format=cell.label_format)
    assert api.convention.name == cell.convention
    image = np.asarray(api(str(files.label), instance=_str(files.instance), seed=seed))
    with pytest.raises(LabelError) as err:
        api(str(files.bad), instance=_str(files.bad_instance), seed=seed)
    line = str(err.value)
    assert "\n" not in line and ("holds" in line or "contains id" in line)
    return Case(cell, bundle, files, key, seed, image, line, tmp)


def _with_convention(src: Path, dst: Path, convention) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["label"]["convention"] = {**convention.to_json(), "source": "test: a checkpoint trained on v - 1"}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


# -- the doors ----------------------------------------------------------------------------
def test_python(case):
    """The API takes the file as a path, as bytes and as a PIL image alike."""
    api = Synthesizer.from_pretrained(case.bundle, backend="onnxruntime", threads=1,
                                      label_format=case.cell.label_format)
    f = case.files
    inst_bytes = None if f.instance is None else f.instance.read_bytes()
    for label, inst in ((f.label.read_bytes(), inst_bytes), (Image.open(f.label), _open(f.instance))):
        np.testing.assert_array_equal(np.asarray(api(label, instance=inst, seed=case.seed)), case.image)
    read = api.intake.read(str(f.label), _str(f.instance))
    assert read.ids.dtype == np.int32 and read.ids.shape == api.bundle.resolution
    assert read.edges_from == ("instance map" if f.instance else "label regions" if api.intake.wants_edges else "")


def _open(p: Path | None) -> Image.Image | None:
    return None if p is None else Image.open(p)


def test_cli(case):
    f = case.files
    out = case.tmp / "cli.png"
    args = ["synthesize", "--bundle", str(case.bundle), "--label", str(f.label), "--seed", str(case.seed),
            "--threads", "1", "--backend", "onnxruntime", "--label-format", case.cell.label_format, "--out", str(out)]
    r = _sdk(*args, *(["--instance", str(f.instance)] if f.instance else []))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(out)), case.image)
    if case.cell.id == "cityscapes-no-instances":  # said once
        assert r.stderr.count("was trained with instance edges and got no instance map") == 1
    args[args.index(str(f.label))] = str(f.bad)
    args[-1] = str(case.tmp / "cli_bad.png")
    r = _sdk(*args, *(["--instance", str(f.bad_instance)] if f.bad_instance else []))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [f"error: {case.bad_line}"]
    assert not (case.tmp / "cli_bad.png").exists()


def _sdk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdk", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_S)


def test_batch(case, local_ray):
    """The good and the bad file in one run: the good one's image is the API's, the bad one
    has an error record with the API's line, and nothing else."""
    from sdk.services.batch import iter_records, synthesize_dataset

    out = case.tmp / "batch"
    report = synthesize_dataset(case.bundle, case.files.root, out, label_format=case.cell.label_format,
                                instances=case.files.instances, seed=SEED, workers=1, cpus_per_worker=0.5,
                                backend="onnxruntime", progress=False)
    bad_key = case.files.bad.relative_to(case.files.root).as_posix()
    assert report.total == 2 and report.written == 1 and report.failed == [(bad_key, case.bad_line)]
    np.testing.assert_array_equal(np.asarray(Image.open(out / case.key)), case.image)
    recs = {r["label"]: r for r in iter_records(out)}
    assert set(recs) == {case.key, bad_key}
    assert recs[bad_key]["error"] == case.bad_line and not (out / bad_key).exists()
    assert recs[case.key]["seed"] == case.seed and "error" not in recs[case.key]
    assert recs[case.key]["instance_path"] == _str(case.files.instance and case.files.instance.resolve())


@pytest.fixture(scope="module")
def serve_port(local_ray):
    from ray import serve

    from sdk.benchmarks.app_browser import free_port

    yield free_port()
    serve.shutdown()


@pytest.fixture
def served(case, serve_port):
    """The case's bundle on Serve (max batch 2, one thread), for this test only."""
    from ray import serve

    from sdk.services.serve import ServeOptions, start

    name = f"doors-{case.cell.id}"
    url = start(case.bundle, ServeOptions(port=serve_port, max_batch=2, batch_wait_ms=5, cpus_per_replica=0.5,
                                          backend="onnxruntime", label_format=case.cell.label_format),
                name=name, route_prefix=f"/{name}")
    yield url
    serve.delete(name)


def post_form(url: str, fields: dict[str, tuple[str, bytes] | str], timeout: float = HANG_S
              ) -> tuple[int, bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n'
                    f"Content-Type: image/png\r\n\r\n").encode()
            parts.append(head + value[1] + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/synthesize", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def test_serve(case, served):
    f = case.files
    fields: dict = {"label": ("label.png", f.label.read_bytes()), "seed": str(case.seed)}
    if f.instance:
        fields["instance"] = ("instance.png", f.instance.read_bytes())
    status, body, headers = post_form(served, fields)
    assert status == 200, body[:300]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), case.image)
    wants_edges = case.cell.preset in ("spade-cityscapes", "spade-coco")
    assert headers.get("x-instance-edges") == (("instance map" if f.instance else "label regions")
                                               if wants_edges else None)
    fields["label"] = ("bad.png", f.bad.read_bytes())
    if f.bad_instance:
        fields["instance"] = ("bad_instance.png", f.bad_instance.read_bytes())
    status, body, _ = post_form(served, fields)
    assert status == 400 and body.decode() == case.bad_line + "\n"


def test_app(case):
    """The app's synthesis callback, started on the file (``sdk app --label L --instance I``): its
    first image, and the image of the same map sent back from the canvas, are the API's."""
    from sdk.services.app import AppSession
    from sdk.services.canvas import canvas_url

    f = case.files
    session = AppSession(case.bundle, backend="onnxruntime", threads=1, label_format=case.cell.label_format,
                         label=str(f.label), instance=_str(f.instance), seed=case.seed)
    image_path, label_path, _, status, _ = session.render(None, case.seed, None, None)
    np.testing.assert_array_equal(np.asarray(Image.open(image_path)), case.image)
    painted = np.asarray(Image.open(label_path))
    np.testing.assert_array_equal(painted, session.start.ids)  # the download: model ids
    image_path, *_ = session.render(canvas_url(painted), case.seed, None, None)
    np.testing.assert_array_equal(np.asarray(Image.open(image_path)), case.image)
    if session.painter.takes_instances:
        assert "instance edges from the " + ("instance map" if f.instance else "label regions") in status
    with pytest.raises(SDKError) as err:
        AppSession(case.bundle, backend="onnxruntime", label_format=case.cell.label_format, label=str(f.bad),
                   instance=_str(f.bad_instance))
    assert str(err.value) == case.bad_line


# -- isolation: a bad item never changes another's outcome ----------------------------------
DEMO = ROOT / "demo" / "spade-street"
STREETS = [ROOT / "samples" / "street_1_label.png", ROOT / "samples" / "street_2_label.png"]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_one_bad_item_fails_alone_in_a_synthesis_batch(small_bundle):
    """The rerun path (:func:`sdk.services.common.isolated`) on a real Synthesizer: a batch the
    synthesis refuses (a Label read for another model) is run item by item, and the good
    items get the images they get alone."""
    from sdk.services.common import isolated

    s = Synthesizer.from_pretrained(DEMO, backend="onnxruntime", threads=1)
    other = Synthesizer.from_pretrained(small_bundle("spade-cityscapes"), label_format="ids")
    good = [s.intake.read(str(p)) for p in STREETS]
    foreign = other.intake.read(np.zeros(other.bundle.resolution, np.int32))
    with pytest.raises(LabelError, match="read it with this model's s.intake"):
        s.synthesize_many([good[0], foreign], [0, 0])
    got = isolated(lambda part: s.synthesize_many(part, [0] * len(part)), [good[0], foreign, good[1]])
    assert isinstance(got[1], LabelError)
    for image, label in ((got[0], good[0]), (got[2], good[1])):
        np.testing.assert_array_equal(np.asarray(image), np.asarray(s(label)))


def test_batch_reports_every_failure_and_does_the_rest(local_ray, tmp_path):
    """sdk batch over 3 good label maps and 2 bad ones: exit 2 with one line; both bad files on
    screen and in records.jsonl; the 3 images exactly the API's; a re-run after the fix makes
    the 2 and nothing else."""
    from sdk.services.batch import item_seed, iter_records, synthesize_dataset
    from sdk.train.data.procedural import scene_label

    src = tmp_path / "in"
    src.mkdir()
    for p in STREETS:
        shutil.copy(p, src / p.name)
    Image.fromarray(np.asarray(scene_label(3), np.uint8)).save(src / "scene_3.png")
    bad = np.asarray(Image.open(STREETS[0])).copy()
    bad[100:140, 200:260] = 34  # a model id of the demo (0..34), not a Cityscapes labelIds value
    Image.fromarray(bad).save(src / "bad_id.png")
    Image.fromarray(np.asarray(Image.open(STREETS[1]))).save(src / "bad_jpeg.png", format="JPEG")
    out = tmp_path / "out"
    r = _sdk("batch", "--bundle", str(DEMO), "--input", str(src), "--out", str(out), "--address", local_ray,
             "--workers", "1", "--cpus-per-worker", "1", "--batch-size", "8", "--backend", "onnxruntime")
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "2 of 5 label maps failed" in errors[0] and "Traceback" not in r.stderr
    s = Synthesizer.from_pretrained(DEMO, backend="onnxruntime", threads=1)
    lines = {}
    for name in ("bad_id.png", "bad_jpeg.png"):
        with pytest.raises(LabelError) as err:
            s(str(src / name))
        lines[name] = str(err.value)
        assert f"failed {name}: {lines[name]}" in r.stdout.splitlines()
    recs = {rec["label"]: rec for rec in iter_records(out)}
    assert {k for k, v in recs.items() if v.get("error")} == set(lines)
    assert all(recs[k]["error"] == v for k, v in lines.items())
    goods = sorted(k for k in recs if not recs[k].get("error"))
    assert goods == ["scene_3.png", "street_1_label.png", "street_2_label.png"]
    # the worker ran the three good maps as one batch: the API's batch of the same three
    expected = s.synthesize_many([str(src / k) for k in goods], [item_seed(0, k) for k in goods])
    for k, img in zip(goods, expected):
        np.testing.assert_array_equal(np.asarray(Image.open(out / k)), np.asarray(img))
    # fixed: a re-run makes exactly the two that failed
    shutil.copy(STREETS[0], src / "bad_id.png")
    shutil.copy(STREETS[1], src / "bad_jpeg.png")
    report = synthesize_dataset(DEMO, src, out, workers=1, backend="onnxruntime", progress=False)
    assert report.written == 2 and report.skipped == 3 and not report.failed
    assert not any(rec.get("error") for rec in iter_records(out))


def test_serve_bad_request_never_changes_its_batch_mate(small_bundle, serve_port):
    """sdk serve --max-batch 2, a good request sent with a bad one at the same moment, again and
    again: the good one always gets the API's image. Bad label: refused before batching (400).
    Bad style image (a truncated PNG, found only when the batch encodes it): the batch is rerun
    request by request, and only the bad one gets its 400."""
    import threading

    from ray import serve

    from sdk.services.serve import ServeOptions, start

    bundle = small_bundle("spade-cityscapes-vae")
    name = "doors-isolation"
    url = start(bundle, ServeOptions(port=serve_port, max_batch=2, batch_wait_ms=500, cpus_per_replica=0.5,
                                     backend="onnxruntime"), name=name, route_prefix=f"/{name}")
    try:
        s = Synthesizer.from_pretrained(bundle, backend="onnxruntime", threads=1)
        label = STREETS[0].read_bytes()
        photo = (ROOT / "samples" / "street_1_photo.png").read_bytes()
        expected = np.asarray(s(label, style=Image.open(io.BytesIO(photo))))
        bad_label = np.asarray(Image.open(STREETS[1])).copy()
        bad_label[:8, :8] = 34
        with pytest.raises(LabelError) as err:
            s(_png(bad_label))
        cases = [({"label": ("bad.png", _png(bad_label)), "seed": "1"}, err.value.args[0]),
                 ({"label": ("l.png", label), "style": ("s.png", photo[: len(photo) * 2 // 3])},
                  "cannot read style image as an RGB image")]
        batched = 0
        for bad_fields, line in cases * 2:
            results: dict[str, tuple] = {}
            good_fields = {"label": ("l.png", label), "style": ("s.png", photo)}
            threads = [threading.Thread(target=lambda k, f: results.__setitem__(k, post_form(url, f)), args=a)
                       for a in (("good", good_fields), ("bad", bad_fields))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            status, body, headers = results["good"]
            assert status == 200, body[:300]
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), expected)
            batched += headers["x-batch-size"] == "2"
            status, body, _ = results["bad"]
            assert status == 400 and line in body.decode() and len(body.decode().splitlines()) == 1
        assert batched >= 1  # the bad style did share a runner batch with the good request
    finally:
        serve.delete(name)


# -- bounds: before work ----------------------------------------------------------------------
def test_huge_dimension_png_is_refused_from_its_header_in_bounded_memory(tmp_path):
    """A small file that claims 12000x12000 pixels: refused from the header (the limit in the
    line) by the CLI, whose peak RSS stays far below the 700 MB target; benchmarks/door_memory.py
    measures every door on such files."""
    import resource

    from sdk.benchmarks.door_memory import huge_png
    from sdk.labels import MAX_PIXELS

    png = huge_png(tmp_path / "huge.png", 12000, 12000)
    assert png.stat().st_size < 1 << 20
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "sdk", "synthesize", "--bundle", str(DEMO),
                        "--label", str(png), "--out", str(tmp_path / "o.png")], cwd=ROOT, capture_output=True,
                       text=True, timeout=HANG_S)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: label is 12000x12000 (HxW)")
    assert f"maps up to {MAX_PIXELS:,} pixels" in r.stderr and "Traceback" not in r.stderr
    peak_mb = int(r.stdout.split()[-1]) / 1024
    assert peak_mb < 700, peak_mb
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
