"""Which form of the synthesis graph a CPU engine is built from: label lookups or convolutions.

A bundle's ONNX graph reads labels with many classes through table lookups
(``export.label_lookup``): on onnxruntime FP32 and OpenVINO FP32 they beat a convolution over
the one-hot map. A reduced-precision OpenVINO engine is the other way round: its matrix units
(AMX, AVX-512 BF16 / VNNI) run the one-hot convolution in BF16 or INT8, while the lookups stay
FP32 gathers whose (N, H, W, C) results OpenVINO transposes and reorders into its blocked
layout, FP32 reference kernels that took 63% of a spade-ade20k INT8 call (Intel Xeon with AMX,
2 threads, 2026-12-03; the engine BF16 ran in 146 ms from convolutions, 447 ms from lookups;
onnxruntime INT8 the other way, 539 ms and 517 ms; not measured on a CPU without AMX). So
``auto`` builds OpenVINO BF16 and INT8 engines from the network re-exported with convolutions
(:func:`convolution_graph`, from the bundle's own weights; it needs torch, the export extra;
without torch ``auto`` keeps the lookups) and everything else from the bundle's graph. The
engine's quality is measured against the bundle's graph either way, so a re-export that
computed other numbers would miss its bar and not be written.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from sdk.bundle import Bundle

LABEL_CONVS = ("auto", "lookups", "convolutions")
"""``auto``: :func:`label_convs_for`; ``lookups``: the bundle's graph as exported;
``convolutions``: re-exported with every label convolution a convolution over the one-hot map."""


def label_convs_for(bundle: Bundle, backend: str, precision: str, wanted: str = "auto") -> str:
    """``"lookups"`` or ``"convolutions"``: the form a ``backend`` / ``precision`` engine of
    ``bundle`` is built from (``wanted``, or the module doc's rule for ``auto``). A graph
    without lookups is built as it is."""
    if wanted not in LABEL_CONVS:
        raise ValueError(f"label_convs must be one of {', '.join(LABEL_CONVS)}, got {wanted!r}")
    if not bundle.graph("model").label_lookups:
        return "lookups"  # nothing to convert: the graph already convolves its one-hot map
    if wanted != "auto":
        return wanted
    reduced_openvino = backend == "openvino" and precision in ("bf16", "int8")
    return "convolutions" if reduced_openvino and has_torch() else "lookups"


def has_torch() -> bool:
    """Whether torch imports (the re-export needs it; without it ``auto`` keeps the lookups)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def convolution_graph(bundle: Bundle, path: Path) -> Path:
    """Export ``bundle``'s synthesis graph to ``path`` with its label convolutions as
    convolutions over a one-hot map made in the graph (no lookups): same inputs, outputs
    and weights as the bundle's graph."""
    from sdk.export.bundle import deployed_network
    from sdk.export.onnx_export import DEFAULT_OPSET, export_onnx
    from sdk.train.deploy.runner import build_model

    ready = build_model(bundle)
    spec = deployed_network(ready, label_lookup=False).graphs()["model"].with_uint8_outputs()
    export_onnx(spec, path, opset=bundle.manifest.export.get("opset", DEFAULT_OPSET))
    return path


@contextlib.contextmanager
def engine_source(bundle: Bundle, form: str, say: Callable[[str], None]) -> Iterator[Path]:
    """The ONNX graph to build from while the context lasts: the bundle's own (``lookups``) or
    a temporary :func:`convolution_graph` (``convolutions``), deleted afterwards."""
    own = bundle.file(bundle.graph("model").file)
    if form == "lookups":
        yield own
        return
    if not has_torch():
        from sdk.export.engine_build import EngineBuildError

        raise EngineBuildError("building from label convolutions re-exports the network, which needs torch "
                               "(pip install 'sdk[torch]'); or pass --label-convs lookups")
    with tempfile.TemporaryDirectory(prefix="sdk-engine-src-") as tmp:
        say(f"re-exporting {own.name} with its {bundle.graph('model').label_lookups} label lookups as "
            "convolutions over the one-hot map (faster in BF16 / INT8 on this engine)")
        yield convolution_graph(bundle, Path(tmp) / "model.onnx")
