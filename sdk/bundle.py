"""The model bundle: a self-describing folder.

::

    manifest.json        what the model is and how to feed it (schema below)
    weights.safetensors  PyTorch weights (for the torch backend and re-export)
    model.onnx           the synthesis graph; encoder.onnx where the model has one
    engines/<key>/       built engines (TensorRT plans, AOTInductor packages)

``manifest.json`` holds: ``schema_version``, ``name`` (preset), ``family``, ``task``
(semantic | unconditional | image2image), ``config`` (the network config, enough to
rebuild it), ``label`` (format, ``num_classes``, ``instance_edge``, ``palette``),
``resolution`` [H, W], ``dtype``, ``value_range``, ``graphs`` (per graph: file,
named inputs/outputs with kinds and shapes, dynamic axes, parity figures),
``files`` (sha256 and size of every file), ``tools`` (versions used to build it),
and ``engines``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .errors import BundleError

SCHEMA_VERSION = 2
"""2: graphs take class ids (int32) and uint8 edge maps, and return 8-bit images too;
1: float one-hot inputs (refused: re-export)."""
MANIFEST = "manifest.json"
CACHE_FILES = frozenset({"compile_cache.bin"})
"""Files a runtime may write into ``engines/<key>/`` (torch.compile artifacts): caches,
not part of the bundle, so neither listed in the manifest nor checked."""
_REQUIRED = ("schema_version", "name", "family", "task", "resolution", "graphs", "files")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record sha256 and size of every file under ``folder`` and write the manifest atomically."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".") and p.name not in CACHE_FILES:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {**manifest, "files": files}
    write_bytes_atomic(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
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
            self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{mpath} is corrupt ({exc}); re-export the bundle") from exc
        missing = [k for k in _REQUIRED if k not in self.manifest]
        if missing:
            raise BundleError(f"{mpath} lacks {', '.join(missing)}; re-export the bundle")
        version = self.manifest["schema_version"]
        if version == 1:
            raise BundleError(
                f"{self.path} is a schema-1 bundle (float one-hot inputs), which this sdk no longer runs: "
                f"re-export it with python -m export bundle --model {self.manifest.get('name', 'NAME')} "
                f"--checkpoint {self.path / 'weights.safetensors'} --out NEW_FOLDER")
        if version != SCHEMA_VERSION:
            raise BundleError(f"{self.path} has manifest schema {version}; this sdk reads schema "
                              f"{SCHEMA_VERSION}: re-export the bundle or upgrade sdk")
        for graph in self.manifest["graphs"].values():
            if graph["file"] is not None and graph["file"] not in self.manifest["files"]:
                raise BundleError(f"manifest lists graph file {graph['file']} without a checksum; re-export")
        if verify:
            self.verify()

    def verify(self, files: list[str] | None = None) -> None:
        """Check that every listed file exists with its recorded size and sha256."""
        for rel, meta in self.manifest["files"].items():
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
        exported = {g["file"] for g in self.manifest["graphs"].values()} | {"weights.safetensors"}
        if rel.startswith("engines/"):
            return f"rebuild the engine (python -m export engine --bundle {self.path} ...) or copy the bundle again"
        if rel in exported:
            return "copy the bundle again whole, or re-export it (python -m export bundle ...)"
        return "copy the bundle again whole from where it came from (export does not make this file)"

    # -- what the SDK reads ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def family(self) -> str:
        return self.manifest["family"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def resolution(self) -> tuple[int, int]:
        h, w = self.manifest["resolution"]
        return int(h), int(w)

    @property
    def label(self) -> dict[str, Any]:
        return self.manifest.get("label") or {}

    @property
    def num_classes(self) -> int | None:
        return self.label.get("num_classes")

    @property
    def random_weights(self) -> bool:
        """True when the bundle was exported without a checkpoint (seeded random weights)."""
        source = (self.manifest.get("weights") or {}).get("source")
        return isinstance(source, str) and source.startswith("random")

    def graph(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["graphs"][name]
        except KeyError:
            raise BundleError(f"bundle {self.path} ({self.name}) has no {name!r} graph; "
                              f"it has {sorted(self.manifest['graphs'])}") from None

    def has_graph(self, name: str) -> bool:
        return name in self.manifest["graphs"]

    def file(self, rel: str) -> Path:
        return self.path / rel
