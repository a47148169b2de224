"""A CPU engine's quality and speed, measured against the bundle's FP32 graph.

Quality: the engine and the FP32 ONNX graph (onnxruntime CPU, the SDK's default) run the
held-out set (``export.quality_set``: block maps holding every class, procedural scenes,
noise-like maps; never the calibration maps). Per image: PSNR of the 8-bit image
(``image_u8``, peak 255); per row and over the set: the **worst image's PSNR** (and which
map it was) beside the mean, what the bars and ``auto`` read (:func:`held_out_quality`);
over all images pooled: PSNR, the largest and the mean absolute difference in levels and
the relative L2 error of the float images. For the trained demo bundle
(``spade-demo-street`` with learned weights) also the mean PSNR of the engine's and the
FP32 graph's images against the procedural renderer on held-out scenes (seeds from
1000000, as ``scripts/train_demo.py`` evaluates the model).

Speed: median milliseconds of one batch-1 call (feeds in, the 8-bit image out) of the
engine and of onnxruntime FP32 with the same thread count, in ABBA blocks so a drifting
load weighs on both alike (:func:`block_medians`); ``speedup`` = FP32 median / engine
median. ``backend="auto"`` ranks CPU engines by it.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable

import numpy as np

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
HELD_OUT = 1_000_000
"""First seed of the renderer scenes (``scripts/train_demo.py``'s held-out scenes)."""


PSNR_IDENTICAL = 100.0
"""PSNR recorded for identical images (no infinity in JSON manifests)."""


def _psnr(mse: float) -> float:
    return PSNR_IDENTICAL if mse == 0 else min(PSNR_IDENTICAL, 10 * math.log10(255.0 ** 2 / mse))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (:data:`PSNR_IDENTICAL` when identical)."""
    return _psnr(float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def image_quality(reference: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]],
                  u8_names: list[str], float_names: list[str]) -> dict[str, float]:
    """Figures of ``got`` against ``reference`` (lists of output dicts, one per input)."""
    sq, absum, count, worst = 0.0, 0.0, 0, 0
    num, den = 0.0, 0.0
    for ref, out in zip(reference, got):
        for name in u8_names:
            d = out[name].astype(np.float64) - ref[name].astype(np.float64)
            sq += float(np.sum(d * d))
            absum += float(np.sum(np.abs(d)))
            count += d.size
            worst = max(worst, int(np.abs(d).max()))
        for name in float_names:
            num += float(np.sum((out[name].astype(np.float64) - ref[name]) ** 2))
            den += float(np.sum(ref[name].astype(np.float64) ** 2))
    mse = sq / max(count, 1)
    return {"psnr_db": round(_psnr(mse), 2),
            "max_abs_levels": worst, "mean_abs_levels": round(absum / max(count, 1), 4),
            "relative_l2": math.sqrt(num / den) if den else 0.0}


def held_out_quality(reference: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]],
                     names: list[str], rows: list[str], u8_names: list[str],
                     float_names: list[str]) -> dict[str, Any]:
    """Per-image PSNR of ``got`` against ``reference`` (one output dict per held-out image,
    named ``names``, of row ``rows``): ``{"model": pooled figures (:func:`image_quality`)
    plus worst_psnr_db, worst_image, mean_psnr_db; "rows": row -> worst / mean / images}``."""
    per_image = [min(psnr(out[n], ref[n]) for n in u8_names) for ref, out in zip(reference, got)]
    figures: dict[str, Any] = {"model": {**image_quality(reference, got, u8_names, float_names),
                                         **_worst_and_mean(per_image, names)}, "rows": {}}
    for row in dict.fromkeys(rows):
        idx = [i for i, r in enumerate(rows) if r == row]
        figures["rows"][row] = {**_worst_and_mean([per_image[i] for i in idx], [names[i] for i in idx]),
                                "images": len(idx)}
    figures["images"] = {name: round(v, 2) for name, v in zip(names, per_image)}
    return figures


def _worst_and_mean(values: list[float], names: list[str]) -> dict[str, Any]:
    worst = int(np.argmin(values))
    return {"worst_psnr_db": round(values[worst], 2), "worst_image": names[worst],
            "mean_psnr_db": round(float(np.mean(values)), 2)}


def compare_runs(engine: Run, fp32: Run, inputs: list[dict[str, np.ndarray]], u8_names: list[str],
                 float_names: list[str]) -> dict[str, float]:
    """Run both on every input and compare (:func:`image_quality`)."""
    names = u8_names + float_names
    ref = [{k: v for k, v in fp32(f).items() if k in names} for f in inputs]
    got = [{k: v for k, v in engine(f).items() if k in names} for f in inputs]
    return image_quality(ref, got, u8_names, float_names)


def renderer_psnr(runs: dict[str, Run], label_input: str, u8_name: str, size: tuple[int, int],
                  scenes: int = 8) -> dict[str, Any]:
    """Mean PSNR (dB) of each run's image against the procedural renderer's on ``scenes``
    held-out street scenes (label-only graphs, Cityscapes ids)."""
    from sdk.train.data.procedural import render, scene_label

    scores: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(scenes):
        lab = scene_label(HELD_OUT + i, *size)
        target = render(lab, HELD_OUT + i)
        for name, run in runs.items():
            scores[name].append(psnr(run({label_input: lab[None].astype(np.int32)})[u8_name][0], target))
    return {**{f"{name}_psnr_db": round(float(np.mean(v)), 2) for name, v in scores.items()},
            "scenes": scenes, "seeds": f"{HELD_OUT}..{HELD_OUT + scenes - 1}"}


def block_medians(calls: dict[str, Callable[[], Any]], runs: int, warmup: int = 1) -> dict[str, Any]:
    """Median / p90 ms of each zero-argument call over ``runs`` calls taken in two blocks per
    call, in the order A B B A (a load that drifts during the measurement weighs on both
    alike), each block after ``warmup`` untimed calls.

    Not call by call: two runtimes in one process alternating call by call slow each other
    (onnxruntime's threads spin-wait after a call while OpenVINO's start): OpenVINO INT8 on
    the demo measured 32.8 ms interleaved against 11.9 ms on its own."""
    names = list(calls)
    order = names + names[::-1]
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, name in enumerate(order):
        for _ in range(warmup):
            calls[name]()
        for _ in range(runs // 2 + (runs % 2 if i >= len(names) else 0)):
            t0 = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"median_ms": round(statistics.median(t), 3), "p90_ms": round(float(np.percentile(t, 90)), 3)}
            for name, t in times.items()}


def interleaved_medians(calls: dict[str, Callable[[], Any]], runs: int, warmup: int = 1) -> dict[str, Any]:
    """Median / p90 ms of each zero-argument call, the calls interleaved round by round."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"median_ms": round(statistics.median(t), 3), "p90_ms": round(float(np.percentile(t, 90)), 3)}
            for name, t in times.items()}
