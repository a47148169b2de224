"""``python -m export engine``: build an engine for this machine into a bundle.

CPU engines (OpenVINO, onnxruntime INT8) are built from the ONNX graph by
``export.engine_cpu`` (no torch needed), gated by their quality against the FP32 graph;
:func:`build_engine` dispatches there. For TensorRT and AOTInductor, for each graph of
the bundle: compile (TensorRT plan from the ONNX file, AOTInductor package from the
network rebuilt from the bundle's weights), check parity against
PyTorch FP32 on seeded inputs (``sdk.export.parity.relative_l2``; limits in
``sdk.export.parity.PARITY_LIMITS``), then swap ``engines/<key>/`` in atomically and rewrite
the manifest (``engines`` section and sha256 list) with ``sdk.bundle.write_manifest``.
Nothing changes in the bundle unless every graph builds and passes.

Random-weight bundles already carry calibrated normalisation statistics
(``sdk.train.deploy.fold.calibrate_norm_stats`` at bundle export), so the parity figures measure a
well-conditioned network rather than saturated outputs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sdk.atomic import atomic_dir
from sdk.bundle import Bundle, write_manifest
from sdk.engines import (
    CPU_ENGINE_BACKENDS,
    ENGINE_BACKENDS,
    aoti_target,
    engine_key,
    tensorrt_target,
)
from sdk.export.engine_records import (
    ENGINE_FILES,
    BatchProfile,
    engine_record,
    parse_batch_profile,
)
from sdk.export.parity import (
    PARITY_LAYOUTS,
    PARITY_LIMITS,
    ParityError,
    compare_outputs,
    reference_outputs,
)
from sdk.manifest import EngineRecord, GraphRecord, ProbeRecord, TensorSpec

Progress = Callable[[str], None]


class EngineBuildError(ValueError):
    """A request the engine builder cannot satisfy (bad --shapes, precision not on this device)."""


def parse_shapes(items: Sequence[str], graph_inputs: list[TensorSpec]) -> dict[str, list[int]]:
    """Non-batch dims per input: the manifest's, overridden by ``NAME=DxDx...`` items.

    An override must agree with every static dim of the graph (only dynamic dims may be
    chosen); our graphs are static but for the batch, so overrides are checks.
    """
    shapes = {s.name: list(s.shape[1:]) for s in graph_inputs}
    for item in items:
        name, sep, dims = item.partition("=")
        if not sep or name not in shapes:
            raise EngineBuildError(f"--shapes {item!r}: expected NAME=DxD... with NAME one of {sorted(shapes)}")
        try:
            values = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            raise EngineBuildError(f"--shapes {item!r}: dims must be integers separated by 'x'") from None
        base = shapes[name]
        if len(values) != len(base) or any(b is not None and isinstance(b, int) and b != v
                                           for b, v in zip(base, values)):
            raise EngineBuildError(f"--shapes {item!r} does not fit input {name!r} of shape [batch, "
                             f"{', '.join(map(str, base))}] (only dynamic dims can be set)")
        shapes[name] = values
    for name, dims in shapes.items():
        if any(not isinstance(d, int) for d in dims):
            raise EngineBuildError(f"input {name!r} has dynamic non-batch dims {dims}; give them with --shapes {name}=...")
    return shapes


def parity_batches(batch: BatchProfile) -> list[int]:
    return sorted({batch.min, min(batch.opt, 4)} | ({2} if batch.max >= 2 else set()))


def graph_parity(spec: Any, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], batches: list[int],
                 seed: int = 0) -> dict[str, float]:
    """Relative L2 (worst output) of ``run`` (class-id feeds -> outputs by name) vs the
    one-hot network ``spec.module`` in FP32 on seeded inputs, per batch and label layout
    (``PARITY_LAYOUTS``), and the worst 8-bit output difference in levels (``u8_max_levels``)."""
    report: dict[str, float] = {}
    levels = 0
    for layout, key in PARITY_LAYOUTS.items():
        for b in batches:
            examples = spec.examples(b, seed=seed + b, layout=layout)
            got = run({s.name: x.numpy() for s, x in zip(spec.inputs, examples)})
            err, lv = compare_outputs(reference_outputs(spec, examples), got, f"batch {b}, {layout} labels",
                                      None, max_levels=None)
            report[key.format(b=b)] = err
            levels = max(levels, lv)
    report["u8_max_levels"] = levels
    return report


def build_engine(bundle_path: str | Path, backend: str, *, precision: str = "fp16", batch: str | BatchProfile = "1:4:8",
                 shapes: Sequence[str] = (), device: str | None = None, seed: int = 0,
                 progress: Progress | None = None, **cpu_options: Any) -> EngineRecord:
    """Build ``backend`` at ``precision`` for this machine into the bundle; returns the record.

    ``cpu_options`` go to :func:`export.engine_cpu.build_cpu_engine` (``calibration``,
    ``calibration_size``, ``keep_float``, ``threads``...) for the CPU engine backends."""
    if backend in CPU_ENGINE_BACKENDS:
        from sdk.export.engine_cpu import build_cpu_engine

        return build_cpu_engine(bundle_path, backend, precision=precision, progress=progress, **cpu_options)
    if cpu_options:
        raise EngineBuildError(f"{', '.join(sorted(cpu_options))}: options of the CPU engines, not of {backend}")
    from sdk.train.deploy.runner import build_model

    say = progress or (lambda msg: None)
    profile = parse_batch_profile(batch) if isinstance(batch, str) else batch
    bundle = Bundle(bundle_path)
    target, versions = engine_target(backend, precision, device)
    key = engine_key(backend, precision, target, versions)
    graphs = build_model(bundle).graphs()
    build = _GraphBuild(backend, precision, profile, target, key, shapes, bundle.path / "engines" / key / "timing.cache")
    start = time.perf_counter()
    with atomic_dir(bundle.path / "engines" / key) as tmp:
        for gname in bundle.manifest.graphs:
            say(f"building {backend} {precision} engine of {gname} ({key})")
            run = build.graph(bundle, gname, graphs[gname], tmp, say)
            if run is not None:
                say(f"checking {gname}: {backend} {precision} vs the one-hot network in PyTorch FP32")
                build.parity[gname] = check_engine_parity(graphs[gname], run, profile, backend, precision, gname, seed)
    record = engine_record(key=key, backend=backend, precision=precision, device=target, versions=versions,
                           batch=profile, files=build.files, parity=build.parity, shapes=build.fixed,
                           notes=build.notes, build_s=round(time.perf_counter() - start, 1),
                           probe=build.probes or None)
    manifest = bundle.manifest
    manifest.engines = {**manifest.engines, key: record}
    write_manifest(bundle.path, manifest)
    return record


def engine_target(backend: str, precision: str, device: str | None) -> tuple[str, dict[str, str]]:
    """(device target, runtime versions) an engine of ``backend`` is built for on this machine."""
    if backend == "tensorrt":
        return tensorrt_target()
    if backend != "aoti":
        raise EngineBuildError(f"unknown engine backend {backend!r}; choose one of {', '.join(ENGINE_BACKENDS)}")
    target, versions = aoti_target(device)
    if target.startswith("cpu-") and precision in ("fp16", "tf32"):
        raise EngineBuildError(f"AOTInductor {precision} needs a GPU; on CPU build --precision fp32 or bf16")
    return target, versions


def check_engine_parity(spec: Any, run: Any, profile: BatchProfile, backend: str, precision: str, gname: str,
                        seed: int) -> dict[str, float]:
    """The engine's parity against the one-hot network in PyTorch FP32; above the precision's
    limit (or not finite) it is an error and nothing is written."""
    parity = graph_parity(spec, run, parity_batches(profile), seed=seed)
    worst = max(v for k, v in parity.items() if k != "u8_max_levels")
    limit = PARITY_LIMITS[precision]
    if not np.isfinite(worst) or worst > limit:
        raise ParityError(f"{backend} {precision} engine of {gname}: relative L2 {worst:.3g} vs PyTorch "
                          f"FP32 exceeds {limit:g}; the bundle is unchanged")
    return parity


class _GraphBuild:
    """One engine build's per-graph step and what it collects for the manifest record."""

    def __init__(self, backend: str, precision: str, profile: BatchProfile, target: str, key: str,
                 shapes: Sequence[str], old_cache: Path) -> None:
        self.backend, self.precision, self.profile, self.target, self.key = backend, precision, profile, target, key
        self.shapes, self.old_cache = shapes, old_cache
        self.files: dict[str, str] = {}
        self.parity: dict[str, dict[str, float]] = {}
        self.fixed: dict[str, list[int]] = {}
        self.notes: dict[str, Any] = {}
        self.probes: dict[str, ProbeRecord] = {}

    def graph(self, bundle: Bundle, gname: str, spec: Any, tmp: Path, say: Progress) -> Any:
        """Build graph ``gname`` into ``tmp``; returns a runner to check, or None (a package
        that failed its load probe: recorded, the runtime uses the torch runner)."""
        out = tmp / f"{gname}{ENGINE_FILES[self.backend]}"
        self.files[gname] = f"engines/{self.key}/{out.name}"
        info = bundle.graph(gname)
        if self.backend == "tensorrt":
            return self._tensorrt(bundle, gname, info, out, tmp)
        return self._aoti(gname, spec, info, out, say)

    def _tensorrt(self, bundle: Bundle, gname: str, info: GraphRecord, out: Path, tmp: Path) -> Any:
        from sdk.backends.tensorrt import PlanExecutor
        from sdk.export.engine_tensorrt import build_plan

        in_shapes = parse_shapes(self.shapes, info.inputs)
        self.fixed.update({f"{gname}.{k}": v for k, v in in_shapes.items()})
        cache = tmp / "timing.cache"
        if self.old_cache.is_file() and not cache.is_file():
            cache.write_bytes(self.old_cache.read_bytes())
        self.notes[gname] = build_plan(bundle.file(info.file), out, precision=self.precision, batch=self.profile,
                                       input_shapes=in_shapes, timing_cache=cache)
        return PlanExecutor(str(out))

    def _aoti(self, gname: str, spec: Any, info: GraphRecord, out: Path, say: Progress) -> Any:
        from sdk.backends.aoti import PackageExecutor, probe_package
        from sdk.export.engine_aoti import compile_package

        dev = "cpu" if self.target.startswith("cpu-") else "cuda"
        self.notes[gname] = compile_package(spec.with_uint8_outputs(), out, precision=self.precision,
                                            batch=self.profile, device=dev)
        say(f"probing {gname}: loading the package in a fresh process")
        self.probes[gname] = probe_package(str(out), info.inputs, dev)
        if not self.probes[gname].ok:
            say(f"the {gname} package does not load in a fresh process ({self.probes[gname].detail}); "
                f"recorded, and the runtime will use the torch runner instead")
            return None
        return PackageExecutor(str(out), [s.name for s in info.inputs],
                               [s.name for s in info.outputs], dev, self.precision)
