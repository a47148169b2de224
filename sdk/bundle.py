"""The model bundle: a self-describing folder.

::

    manifest.json        what the model is and how to feed it (``sdk.manifest.Manifest``)
    weights.safetensors  deploy weights: the torch backend's, read by the ONNX graphs too
    model.onnx           the synthesis graph; encoder.onnx where the model has one
    engines/<key>/       built engines (TensorRT plans, AOTInductor packages, CPU engines)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .errors import BundleError
from .manifest import SCHEMA_VERSION, GraphRecord, Manifest

__all__ = ["Bundle", "CACHE_FILES", "MANIFEST", "Manifest", "SCHEMA_VERSION", "sha256_file", "write_manifest"]

MANIFEST = "manifest.json"
CACHE_FILES = frozenset({"compile_cache.bin"})
"""Files a runtime may write into ``engines/<key>/`` (torch.compile artifacts): caches,
not part of the bundle, so neither listed in the manifest nor checked."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Record sha256 and size of every file under ``folder`` in ``manifest.files`` and write
    the manifest atomically; returns it."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".") and p.name not in CACHE_FILES:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest.files = files
    Manifest.from_json(manifest.to_json(), str(folder / MANIFEST))  # never write what cannot be read back
    write_bytes_atomic(folder / MANIFEST, (json.dumps(manifest.to_json(), indent=2) + "\n").encode())
    return manifest


class Bundle:
    """A bundle folder whose manifest has been read and (by default) verified."""

    def __init__(self, path: str | Path, *, verify: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise BundleError(f"bundle {self.path} does not exist or is not a folder; "
                              f"export one with `python -m export bundle --model NAME --out {self.path}`")
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{mpath} is missing: {self.path} is not a bundle (re-export it)")
        try:
            data = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{mpath} is corrupt ({exc}); re-export the bundle") from exc
        self.manifest = Manifest.from_json(data, str(mpath))
        if verify:
            self.verify()

    def verify(self, files: list[str] | None = None) -> None:
        """Check that every listed file exists with its recorded size and sha256."""
        for rel, meta in self.manifest.files.items():
            if files is not None and rel not in files:
                continue
            p = self.path / rel
            if not p.is_file():
                raise BundleError(f"bundle file {p} is missing; {self._restore_hint(rel)}")
            if p.stat().st_size != meta["bytes"] or sha256_file(p) != meta["sha256"]:
                raise BundleError(f"bundle file {p} does not match its sha256 in the manifest: it was "
                                  f"modified or truncated; {self._restore_hint(rel)}")

    def _restore_hint(self, rel: str) -> str:
        """How to get a bundle file back: export makes the graphs and weights, engine builds
        make engines; anything else (a training record) only the original copy has."""
        exported = {g.file for g in self.manifest.graphs.values()} | {"weights.safetensors"}
        if rel.startswith("engines/"):
            return f"rebuild the engine (python -m export engine --bundle {self.path} ...) or copy the bundle again"
        if rel in exported:
            return "copy the bundle again whole, or re-export it (python -m export bundle ...)"
        return "copy the bundle again whole from where it came from (export does not make this file)"

    # -- what the SDK reads ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def family(self) -> str:
        return self.manifest.family

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def resolution(self) -> tuple[int, int]:
        h, w = self.manifest.resolution
        return int(h), int(w)

    @property
    def label(self) -> dict[str, Any]:
        return self.manifest.label or {}

    @property
    def num_classes(self) -> int | None:
        return self.label.get("num_classes")

    @property
    def random_weights(self) -> bool:
        """True when the bundle was exported without a checkpoint (seeded random weights)."""
        source = self.manifest.weights.get("source")
        return isinstance(source, str) and source.startswith("random")

    def graph(self, name: str) -> GraphRecord:
        """The record of graph ``name`` (its file, typed inputs and outputs, parity)."""
        try:
            return self.manifest.graphs[name]
        except KeyError:
            raise BundleError(f"bundle {self.path} ({self.name}) has no {name!r} graph; "
                              f"it has {sorted(self.manifest.graphs)}") from None

    def has_graph(self, name: str) -> bool:
        return name in self.manifest.graphs

    def file(self, rel: str) -> Path:
        return self.path / rel
