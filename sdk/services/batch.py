"""Bulk synthesis on Ray: a folder (glob, list file) of label maps -> one PNG each.

>>> from sdk.services.batch import synthesize_dataset
>>> report = synthesize_dataset("demo/spade-street", "labels/", "out/", seed=0)

Each label map (and its instance map, found by ``instances``) is read by the bundle's
:class:`~sdk.LabelIntake` as every door reads it, so an image is the one
``Synthesizer(label, instance=..., seed=item_seed(...))`` gives.

Ray Data reads the label paths and ``map_batches`` runs them through a pool of actors,
each holding one :class:`~sdk.Synthesizer` (one per GPU, or one per ``cpus_per_worker``
cores, on the backend ``auto`` picks on that worker's machine). Locally by default;
``address=`` runs on a cluster (the label and output folders must then be on a file
system every node sees, and every node needs ``pip install "sdk[scale]"``).

What makes a run restartable:

* Each image's seed is a function of (global seed, label path relative to the labels
  root): a re-run, or the same data set in another folder, gives the same images.
* Workers write each PNG atomically (temp file + rename); the driver alone appends one
  JSONL record per image to ``OUT/records.jsonl`` (label, output, seed, bundle sha,
  backend, worker, time), after the image is on disk. An image counts as done when it
  has both; a re-run skips done images and redoes the rest.
* A worker that dies mid-batch is restarted by Ray and its batch is run again: the
  images it had written are rewritten with the same bytes, and the driver records each
  image once (records are keyed by label), so nothing is lost and nothing duplicated.
  Temp files a killed worker left are removed at the end of the run.
* One run at a time per output folder: the driver holds a lock on ``OUT/.sdk-batch.lock``.
* A label map that cannot be read, or that the synthesis refuses, fails alone: it gets an
  error record (``"error"``: the one line every door gives), the others of its batch are
  made, and a re-run tries it again.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob as globlib
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from sdk import SDKError
from sdk.atomic import check_writable, write_bytes_atomic
from sdk.notices import notice

from .common import bundle_sha, edges_line, error_line, isolated, open_synthesizer, png_bytes, start_ray, threads_for

RECORDS = "records.jsonl"
LOCK = ".sdk-batch.lock"
LABEL_SUFFIXES = (".png",)
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Item:
    """One label map to synthesize: ``key`` is its path relative to the labels root;
    ``instance`` its instance map's path ('' for none)."""

    key: str
    label: str
    out: str
    seed: int
    instance: str = ""


@dataclass
class BatchReport:
    """What a run did. ``throughput`` counts written images over the synthesis phase
    (from the first batch submitted to the last image recorded; Ray start-up excluded)."""

    total: int
    written: int
    skipped: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(label key, the one-line reason) of every label map that got no image this run."""
    workers: int = 0
    backend: str = ""
    synthesis_s: float = 0.0
    wall_s: float = 0.0
    records: str = ""
    steady_throughput: float = 0.0
    """Images/s from the moment the first worker started its first batch to the end of
    the last batch (worker clocks): start-up of Ray and of the actors excluded."""

    @property
    def throughput(self) -> float:
        return self.written / self.synthesis_s if self.synthesis_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput": self.throughput}


# -- inputs ---------------------------------------------------------------------------
def list_labels(spec: str | Path | Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """Resolve ``--input`` to (root, sorted label files).

    ``spec`` is a folder (every ``*.png`` under it, recursively), a glob (``'maps/*.png'``,
    ``**`` allowed), a list file (one path per line, relative to the list file's folder;
    blank lines and ``#`` comments skipped) or a list of paths. Output names mirror each
    label's path relative to ``root``.
    """
    if isinstance(spec, (list, tuple)):
        paths = [Path(p) for p in spec]
        what = "the given list"
    else:
        text = str(spec)
        p = Path(text)
        if p.is_dir():
            paths = [q for q in p.rglob("*") if q.suffix.lower() in LABEL_SUFFIXES and q.is_file()
                     and not any(part.startswith(".") for part in q.relative_to(p).parts)]
            what = f"folder {p}"
            if not paths:
                raise SDKError(f"no label maps (*.png) in folder {p}; give a folder, glob or list file of label PNGs")
            return p.resolve(), sorted(q.resolve() for q in paths)
        if _GLOB_CHARS & set(text):
            paths = [Path(q) for q in globlib.glob(text, recursive=True) if Path(q).is_file()]
            what = f"glob {text!r}"
            fixed = [part for part in Path(text).parts if not _GLOB_CHARS & set(part)]
            prefix = Path(*Path(text).parts[:len(fixed)]) if fixed else Path(".")
            if paths:
                return _root_of(paths, prefix), sorted({q.resolve() for q in paths})
        elif p.is_file() and p.suffix.lower() in LABEL_SUFFIXES:
            paths, what = [p], f"file {p}"
        elif p.is_file():
            base = p.parent
            lines = [ln.strip() for ln in p.read_text().splitlines()]
            paths = [base / ln if not Path(ln).is_absolute() else Path(ln)
                     for ln in lines if ln and not ln.startswith("#")]
            what = f"list file {p}"
            missing = [q for q in paths if not q.is_file()]
            if missing:
                raise SDKError(f"list file {p} names {len(missing)} missing file(s), e.g. {missing[0]}; "
                               f"paths are relative to the list file's folder")
        else:
            raise SDKError(f"--input {text}: no such folder, file or matching glob; give a folder, "
                           f"a glob such as 'maps/*.png' or a text file listing label PNGs")
    if not paths:
        raise SDKError(f"{what} matched no label files; give a folder, glob or list file of label PNGs")
    resolved = sorted({q.resolve() for q in paths})
    return _root_of(resolved, None), resolved


def _root_of(paths: Sequence[Path], prefix: Path | None) -> Path:
    parents = [str(q.resolve().parent) for q in paths]
    if prefix is not None:
        parents.append(str(prefix.resolve()))
    return Path(os.path.commonpath(parents))


def item_seed(global_seed: int, key: str) -> int:
    """The seed of one image: a hash of (global seed, label path relative to the root)."""
    digest = hashlib.sha256(f"{int(global_seed)}\0{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def find_instances(root: Path, labels: Sequence[Path], spec: str | Path | None) -> list[Path | None]:
    """The instance map of each label map, by ``spec`` (``--instances``):

    * a pattern: a path relative to each label's folder with ``{stem}`` (the label file's
      name without ``.png``) and ``{prefix}`` (the stem up to its last ``_``), e.g.
      ``'{prefix}_instanceIds.png'`` beside Cityscapes' ``*_gtFine_labelIds.png``, or
      ``'../val_inst/{stem}.png'`` for COCO-Stuff's folders;
    * a folder holding the instance maps at the labels' relative paths;
    * None: no instance maps.
    A named file that does not exist fails that label map only (its error record says so).
    """
    if spec is None:
        return [None] * len(labels)
    text = str(spec)
    if "{" in text:
        try:
            return [(p.parent / text.format(stem=p.stem, prefix=p.stem.rsplit("_", 1)[0])).resolve() for p in labels]
        except (KeyError, IndexError, ValueError) as exc:
            raise SDKError(f"--instances {text!r}: {type(exc).__name__} {exc}; a pattern may use {{stem}} "
                           f"(the label's name without .png) and {{prefix}} (the stem up to its last '_')") from None
    folder = Path(text)
    if not folder.is_dir():
        raise SDKError(f"--instances {text}: no such folder, and no {{stem}} or {{prefix}} in it; give the folder of "
                       f"instance maps (same relative paths as the labels) or a pattern such as "
                       f"'{{prefix}}_instanceIds.png'")
    return [(folder / p.relative_to(root)).resolve() for p in labels]


def plan(root: Path, labels: Sequence[Path], out: Path, global_seed: int,
         instances: Sequence[Path | None] | None = None) -> list[Item]:
    """One :class:`Item` per label; output names mirror the labels' relative paths."""
    items, seen = [], {}
    for i, p in enumerate(labels):
        key = p.relative_to(root).as_posix()
        dest = (out / key).with_suffix(".png")
        if dest in seen:
            raise SDKError(f"{seen[dest]} and {key} would both be written to {dest}; "
                           f"rename one of them or run them into separate --out folders")
        seen[dest] = key
        inst = instances[i] if instances is not None else None
        items.append(Item(key, str(p), str(dest), item_seed(global_seed, key), str(inst) if inst else ""))
    return items


# -- records --------------------------------------------------------------------------
def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Records keyed by label key. A torn last line (the driver was killed while appending)
    is dropped and the file rewritten without it."""
    if not path.is_file():
        return {}
    records: dict[str, dict[str, Any]] = {}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                torn = True
                continue
            raise SDKError(f"{path} line {i + 1} is not JSON; it is not an sdk batch record file "
                           f"(move it away or choose another --out)") from None
        if not isinstance(rec, dict) or "label" not in rec:
            raise SDKError(f"{path} line {i + 1} is not an sdk batch record (move the file away or choose "
                           f"another --out)")
        records[rec["label"]] = rec
    if torn or len(records) != sum(1 for ln in lines if ln.strip()):
        _rewrite_records(path, records)
    return records


def _rewrite_records(path: Path, records: dict[str, dict[str, Any]]) -> None:
    body = "".join(json.dumps(r, sort_keys=True) + "\n" for _, r in sorted(records.items()))
    write_bytes_atomic(path, body.encode())


class _RecordLog:
    """The driver's append-only JSONL: one whole line per ``os.write``, fsynced per batch."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            os.write(self.fd, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
            os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _remove_stale_temps(out: Path) -> int:
    """Temp files (``.NAME.*.tmp``, from :func:`sdk.atomic.atomic_path`) left by killed workers."""
    n = 0
    for p in out.rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


# -- the worker -----------------------------------------------------------------------
class SynthesisWorker:
    """A Ray Data actor: one Synthesizer; ``__call__`` turns a batch of items into images
    on disk and returns one result row per item (errors included, as rows)."""

    def __init__(self, bundle: str, backend: str = "auto", threads: int | None = None,
                 png_level: int = 1, label_format: str = "dataset", crash_once: tuple[str, str] | None = None) -> None:
        self.s = open_synthesizer(bundle, backend=backend, threads=threads, label_format=label_format)
        self.png_level = png_level
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        # Fault injection for tests and benchmarks: the first time this label key comes up
        # (marker file absent), write its image, then kill this process as a crash would.
        self.crash_once = crash_once

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        t0 = time.time()
        keys = [str(k) for k in batch["key"]]
        n = len(keys)
        error = [""] * n
        read: list[Any] = [None] * n
        instances = batch.get("instance", [""] * n)
        for i in range(n):  # every label by the one rule, before any batching
            try:
                read[i] = self.s.intake.read(str(batch["label"][i]), str(instances[i] or "") or None)
            except SDKError as exc:
                error[i] = str(exc)
        good = [i for i in range(n) if not error[i]]
        ms = [0.0] * n
        if good:
            start = time.perf_counter()
            images = isolated(lambda idx: self.s.synthesize_many([read[i] for i in idx],
                                                                 [int(batch["seed"][i]) for i in idx]), good)
            per_image = (time.perf_counter() - start) * 1e3 / len(good)
            for i, img in zip(good, images):
                if isinstance(img, Exception):
                    error[i] = error_line(img)
                    continue
                try:
                    write_bytes_atomic(batch["out"][i], png_bytes(img, self.png_level))
                except OSError as exc:
                    error[i] = f"cannot write {batch['out'][i]} ({exc.strerror or type(exc).__name__}); check --out"
                    continue
                ms[i] = per_image
                self._maybe_crash(keys[i])
        return {"key": np.array(keys, dtype=object), "ms": np.array(ms), "error": np.array(error, dtype=object),
                "backend": np.array([self.s.runner().describe()] * n, dtype=object),
                "worker": np.array([self.where] * n, dtype=object),
                "t0": np.full(n, t0), "t1": np.full(n, time.time())}

    def _maybe_crash(self, key: str) -> None:
        if self.crash_once and key == self.crash_once[0]:
            marker = Path(self.crash_once[1])
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, self.where.encode())
            os.close(fd)
            os._exit(17)


# -- the driver -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Sizing:
    workers: int
    cpus: float
    gpus: float


def _size_pool(workers: int | None, cpus_per_worker: float | None, gpus_per_worker: float | None) -> _Sizing:
    """One worker per GPU where the cluster has GPUs, else one per ``cpus_per_worker`` cores."""
    import ray

    res = ray.cluster_resources()
    cluster_gpus, cluster_cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    gpus = gpus_per_worker if gpus_per_worker is not None else (1.0 if cluster_gpus else 0.0)
    cpus = cpus_per_worker if cpus_per_worker is not None else 1.0
    if workers is None:
        workers = int(cluster_gpus // gpus) if gpus else int(cluster_cpus // cpus)
    if workers < 1:
        raise SDKError(f"the Ray cluster has {cluster_cpus} CPUs and {cluster_gpus} GPUs: not enough for one "
                       f"worker of {cpus:g} CPUs / {gpus:g} GPUs; lower --cpus-per-worker")
    return _Sizing(workers, cpus, gpus)


def synthesize_dataset(bundle: str | Path, inputs: str | Path | Sequence[str | Path], out: str | Path, *,
                       label_format: str = "dataset", instances: str | Path | None = None, seed: int = 0,
                       address: str | None = None, workers: int | None = None,
                       cpus_per_worker: float | None = None, gpus_per_worker: float | None = None,
                       batch_size: int = 8, backend: str = "auto", png_level: int = 1,
                       progress: bool | None = None, crash_once: tuple[str, str] | None = None,
                       labels: str | None = None) -> BatchReport:
    """Synthesize one PNG per label map into ``out`` on Ray; re-runs skip finished images.

    Args:
        bundle: bundle folder.
        inputs: folder, glob, list file or list of label PNG paths (see :func:`list_labels`).
        out: output folder: ``<relative label path>.png`` per label and ``records.jsonl``.
        label_format: ``"dataset"`` (the dataset's files, mapped by the bundle's convention) or
            ``"ids"`` (maps of model class ids), as ``Synthesizer.from_pretrained(label_format=)``.
        instances: where each label's instance map is (see :func:`find_instances`): a pattern
            such as ``'{prefix}_instanceIds.png'`` or a folder with the labels' relative paths.
        seed: global seed; each image's seed is :func:`item_seed` (seed, relative path).
        address: Ray cluster address (``ray://...`` or ``HOST:PORT``); None starts a local
            Ray on this machine (or uses the one this process already started).
        workers: actor pool size; default one per GPU, else one per ``cpus_per_worker`` CPUs.
        cpus_per_worker: CPUs per worker (default 1; onnxruntime gets as many threads).
        gpus_per_worker: GPUs per worker (default 1 on a cluster with GPUs, else 0).
        batch_size: label maps per actor call (one runner call).
        png_level: zlib level of the written PNGs (1: ~5x faster than PIL's 6, ~25% larger).
        progress: show a progress bar (default: when stderr is a terminal).
        crash_once: (label key, marker file): the worker that first meets that key kills
            itself after writing its image (fault-injection for tests and benchmarks).
        labels: the old name of ``label_format`` (deprecated: it goes in the next version).

    Returns:
        A :class:`BatchReport`. Every label map that failed (unreadable, refused) is listed in
        ``failed`` and has an error record in ``records.jsonl``, no image; the rest are done.
    """
    t0 = time.perf_counter()
    bundle = Path(bundle)
    b, label_format = _open_checked(bundle, batch_size, label_format, labels, instances)
    root, paths, found = _list_inputs(b, inputs, instances)
    out = check_writable(out, "--out", folder=True)  # before Ray starts or any image is made
    items = plan(root, paths, out.resolve(), seed, found)
    sha = bundle_sha(bundle)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        records, todo, report = _resume(out / RECORDS, items, sha, seed, out)
        if todo:
            _run(bundle, todo, records, out / RECORDS, sha, seed, report, address=address, workers=workers,
                 cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                 backend=backend, png_level=png_level, label_format=label_format, progress=progress,
                 crash_once=crash_once)
        # A finished run leaves the records sorted, one per label map, rewritten atomically.
        _rewrite_records(out / RECORDS, read_records(out / RECORDS))
        _remove_stale_temps(out)
    report.wall_s = time.perf_counter() - t0
    return report


def _open_checked(bundle: Path, batch_size: int, label_format: str, labels: str | None,
                  instances: str | Path | None) -> tuple[Any, str]:
    """The verified bundle and the label format, or the first of the request's problems as an SDKError."""
    from sdk import Bundle
    from sdk.conventions import check_label_format

    b = Bundle(bundle, verify=True)
    if b.task != "semantic":
        raise SDKError(f"{b.name} is a {b.task} model; sdk batch synthesizes label maps with semantic models")
    if batch_size < 1:
        raise SDKError(f"batch size must be >= 1, got {batch_size}")
    label_format = check_label_format(label_format, labels)
    if instances is not None and not b.label.get("instance_edge"):
        raise SDKError(f"{b.name} takes no instance map (it was trained without instance edges); leave "
                       f"--instances out")
    return b, label_format


def _list_inputs(b: Any, inputs: str | Path | Sequence[str | Path], instances: str | Path | None
                 ) -> tuple[Path, list[Path], list[Path | None]]:
    """The labels' root, the label maps and each one's instance map (None where it has none)."""
    root, paths = list_labels(inputs)
    found = find_instances(root, paths, instances)
    if instances is not None:  # instance maps that sit among the labels are no labels themselves
        taken = {q for p, q in zip(paths, found) if q is not None and q != p}
        kept = [i for i, p in enumerate(paths) if p not in taken]
        paths, found = [paths[i] for i in kept], [found[i] for i in kept]
    elif b.label.get("instance_edge"):
        notice(edges_line(b, "--instances PATTERN or FOLDER"))
    return root, paths, found


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock file for the run: a second run on the same folder stops with one line."""
    lock_fd = os.open(out / LOCK, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise SDKError(f"another sdk batch run is writing to {out} (it holds {out / LOCK}); "
                       f"wait for it to finish or give another --out") from None
    try:
        yield
    finally:
        os.close(lock_fd)


def _resume(records_path: Path, items: list[Item], sha: str, seed: int, out: Path
            ) -> tuple[dict[str, dict[str, Any]], list[Item], BatchReport]:
    """The records so far, the items still to make and the report counting the skipped ones."""
    records = read_records(records_path)
    _check_compatible(records, sha, seed, out)
    todo = [it for it in items if not (_done(records.get(it.key)) and Path(it.out).is_file())]
    for it in todo:  # failed before, or an image deleted since its record: made (and recorded) anew
        records.pop(it.key, None)
    report = BatchReport(total=len(items), written=0, skipped=len(items) - len(todo), records=str(records_path))
    return records, todo, report


def _done(record: dict[str, Any] | None) -> bool:
    """A record of an image made (an error record is not: its label map is tried again)."""
    return record is not None and not record.get("error")


def _check_compatible(records: dict[str, dict[str, Any]], sha: str, seed: int, out: Path) -> None:
    for rec in records.values():
        if rec.get("bundle_sha") != sha:
            raise SDKError(f"{out} holds images of another bundle (weights sha256 {str(rec.get('bundle_sha'))[:12]}…, "
                           f"this one is {sha[:12]}…); give a new --out to keep both")
        if rec.get("global_seed") != seed:
            raise SDKError(f"{out} holds images made with --seed {rec.get('global_seed')}; re-run with that "
                           f"seed to finish them, or give a new --out for seed {seed}")


def _run(bundle: Path, todo: list[Item], records: dict[str, dict[str, Any]], records_path: Path, sha: str,
         seed: int, report: BatchReport, *, address: str | None, workers: int | None,
         cpus_per_worker: float | None, gpus_per_worker: float | None, batch_size: int, backend: str,
         png_level: int, label_format: str, progress: bool | None, crash_once: tuple[str, str] | None) -> None:
    """Make ``todo`` on Ray (started here unless ``address`` or this process has one), recording each image."""
    import ray

    started = start_ray(address)
    try:
        _quiet_ray_data()
        blocks = max(1, -(-len(todo) // batch_size))  # one block per batch
        size = _size_pool(workers, cpus_per_worker, gpus_per_worker)
        size = _Sizing(min(size.workers, blocks), size.cpus, size.gpus)  # no idle actors for a short re-run
        report.workers = size.workers
        ds = ray.data.from_items([asdict(it) for it in todo], override_num_blocks=blocks)
        ds = ds.map_batches(
            SynthesisWorker, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size.workers),
            num_cpus=size.cpus, num_gpus=size.gpus,
            fn_constructor_kwargs={"bundle": str(bundle.resolve()), "backend": backend,
                                   "threads": threads_for(size.cpus), "png_level": png_level,
                                   "label_format": label_format, "crash_once": crash_once})
        _collect(ds, todo, records, records_path, sha, seed, report, progress)
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data without its progress bars (ours counts images, not blocks) and per-run INFO lines."""
    import logging

    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours below counts images, not blocks
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # per-run INFO lines and the notice above


def _collect(ds: Any, todo: list[Item], records: dict[str, dict[str, Any]], records_path: Path, sha: str,
             seed: int, report: BatchReport, progress: bool | None) -> None:
    """Record the workers' results as they come (each key once) and time the run into ``report``."""
    import numpy as np

    by_key = {it.key: it for it in todo}
    log = _RecordLog(records_path)
    bar = _progress(len(todo), progress)
    start = time.perf_counter()
    span = [float("inf"), float("-inf")]  # first batch started, last batch ended (worker clocks)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            log.append(_record_batch(batch, by_key, records, sha, seed, report))
            if len(batch["key"]):
                span[0] = min(span[0], float(np.min(batch["t0"])))
                span[1] = max(span[1], float(np.max(batch["t1"])))
            bar.update(len(batch["key"]))
    finally:
        end = time.perf_counter()
        report.synthesis_s = end - start
        if report.written and span[1] > span[0]:
            report.steady_throughput = report.written / (span[1] - span[0])
        log.close()
        bar.close()


def _record_batch(batch: dict[str, Any], by_key: dict[str, Item], records: dict[str, dict[str, Any]], sha: str,
                  seed: int, report: BatchReport) -> list[dict[str, Any]]:
    """The new records of one batch of results (an image's or an error's), counted into ``report``."""
    new = []
    for key, ms, err, be, where in zip(batch["key"], batch["ms"], batch["error"], batch["backend"], batch["worker"]):
        key = str(key)
        if key in records:  # recorded once, whatever Ray re-ran
            continue
        it = by_key[key]
        rec = {"label": key, "label_path": it.label, "instance_path": it.instance or None,
               "global_seed": seed, "bundle_sha": sha, "worker": str(where),
               "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        if err:
            rec["error"] = str(err)
            report.failed.append((key, str(err)))
        else:
            rec.update({"out": it.out, "seed": it.seed, "backend": str(be), "ms": round(float(ms), 3)})
            report.written += 1
            report.backend = str(be)
        records[key] = rec
        new.append(rec)
    return new


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="synthesizing", dynamic_ncols=True)


def iter_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a finished (or interrupted) run, sorted by label: one per label map,
    an image's or (with ``"error"``) a failure's."""
    for _, rec in sorted(read_records(Path(out) / RECORDS).items()):
        yield rec


def format_report(report: BatchReport, out: str | Path) -> str:
    """The CLI's closing lines: what was written, then every label map that failed, one line each."""
    lines = [f"wrote {report.written} images to {out} ({report.skipped} already done, {report.total} labels"
             + (f", {len(report.failed)} failed" if report.failed else "") + ")"]
    if report.written:
        lines.append(f"throughput {report.throughput:.1f} images/s with {report.workers} workers "
                     f"({report.backend}; {report.steady_throughput:.1f} images/s once the workers were up); "
                     f"{report.synthesis_s:.1f} s synthesizing, {report.wall_s:.1f} s in all")
    lines += [f"failed {key}: {why}" for key, why in sorted(report.failed)]
    lines.append(f"records: {report.records}")
    return "\n".join(lines)


__all__ = ["BatchReport", "Item", "SynthesisWorker", "find_instances", "format_report", "item_seed", "iter_records",
           "list_labels", "plan", "read_records", "synthesize_dataset"]
