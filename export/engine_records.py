"""What the engine builder writes: batch profiles, engine files, quality bars and the
manifest record of an engine (``sdk.engines`` keeps what the runtime needs: keys,
matching and selection)."""
from __future__ import annotations

import time
from typing import Any

from sdk.engines import QUALITY_BARS_DB  # noqa: F401  (the runtime's auto reads the same bars)
from sdk.manifest import BatchProfile, EngineRecord, ParityRecord, ProbeRecord, QualityRecord, SpeedRecord

__all__ = ["ENGINE_FILES", "QUALITY_BARS_DB", "BatchProfile", "engine_record", "parse_batch_profile"]

ENGINE_FILES = {"tensorrt": ".plan", "aoti": ".pt2", "openvino": ".xml", "onnxruntime-int8": ".onnx"}


def parse_batch_profile(text: str) -> BatchProfile:
    """``"1:4:8"`` -> ``BatchProfile(1, 4, 8)``; ``"4"`` -> ``BatchProfile(4, 4, 4)``."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"batch profile {text!r} is not MIN:OPT:MAX of integers (e.g. 1:4:8)") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"batch profile {text!r} needs three values MIN:OPT:MAX (e.g. 1:4:8) or one")
    lo, opt, hi = values
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile {text!r} must satisfy 1 <= MIN <= OPT <= MAX")
    return BatchProfile(lo, opt, hi)


def engine_record(*, key: str, backend: str, precision: str, device: str, versions: dict[str, str],
                  batch: BatchProfile, files: dict[str, str], parity: dict[str, dict[str, float]] | None = None,
                  shapes: dict[str, list[int]] | None = None, notes: dict[str, Any] | None = None,
                  build_s: float | None = None, probe: dict[str, ProbeRecord] | None = None,
                  quality: QualityRecord | None = None, speed: SpeedRecord | None = None) -> EngineRecord:
    """One entry of the manifest's ``engines`` section (:class:`sdk.manifest.EngineRecord`).

    ``files``: graph -> path relative to the bundle; ``parity``: graph -> {"batch_N":
    relative L2 vs PyTorch FP32} (TensorRT, AOTInductor); ``shapes``: input -> fixed
    non-batch dims if overridden; ``probe``: graph -> result of loading the file in a
    fresh process (AOTInductor); ``quality``: a CPU engine's figures against the bundle's
    FP32 graph (``export.engine_quality``); ``speed``: its median against onnxruntime FP32
    when it was built (what ``auto`` ranks by).
    """
    parity_record = None
    if parity is not None:
        from .parity import PARITY_LIMITS  # imports torch; parsing --batch in the CLI must not

        parity_record = ParityRecord(reference="torch fp32 (bundle weights), seeded inputs", metric="relative_l2",
                                     limit=PARITY_LIMITS[precision], figures=parity)
    return EngineRecord(key=key, backend=backend, precision=precision, device=device, versions=versions,
                        batch=batch, files=files, shapes=shapes or {}, parity=parity_record, quality=quality,
                        speed=speed, build_s=build_s, notes=notes or {}, probe=probe or {},
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
