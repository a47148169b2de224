"""Train the demo SPADE street model on procedural scenes and ship it as a bundle.

    python scripts/train_demo.py [--minutes 25] [--resume] [--skip-train]

1. trains ``train/configs/demo-spade.yaml`` into ``runs/demo-spade`` for ``--minutes``
   (then stops with a checkpoint, as Ctrl-C does; ``--resume`` continues a run);
2. exports the last checkpoint to ``demo/spade-street`` (a bundle; under 20 MB);
3. measures PSNR of the bundle's images (onnxruntime, 256x512) against the procedural
   renderer's images of held-out scenes, plots the loss curve to ``docs/demo_loss.png``
   and writes both figures to ``demo/spade-street/TRAINING.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "train/configs/demo-spade.yaml"
PRESET = "spade-demo-street"
HELD_OUT = 1_000_000  # evaluation scene seeds start here; training uses seeds < data.num_samples


def train(run: Path, minutes: float, resume: bool) -> tuple[Path, float, int]:
    import torch

    from sdk.train.trainer.config import load_config
    from sdk.train.trainer.loop import Trainer

    cfg = load_config(CONFIG)
    trainer = Trainer(cfg, run, resume=resume)
    start_step = trainer.step
    timer = threading.Timer(minutes * 60, trainer.request_stop)
    timer.daemon = True
    timer.start()
    t0 = time.perf_counter()
    last = trainer.run()
    timer.cancel()
    elapsed = time.perf_counter() - t0
    print(f"[demo] trained {trainer.step - start_step} steps in {elapsed / 60:.1f} min "
          f"({(trainer.step - start_step) / elapsed:.2f} steps/s, torch threads {torch.get_num_threads()})")
    return last, elapsed, trainer.step


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def evaluate(bundle: Path, n: int = 16) -> dict[str, float]:
    """Mean PSNR (dB) over ``n`` held-out scenes: the bundle's image vs the renderer's, and
    two references: the renderer with another seed's colours, and a flat grey image."""
    from sdk.bundle import Bundle
    from sdk.synthesizer import Synthesizer
    from sdk.train.data.procedural import render, scene_label

    synth = Synthesizer(Bundle(bundle), backend="onnxruntime")
    model, other, grey = [], [], []
    for i in range(n):
        seed = HELD_OUT + i
        lab = scene_label(seed)
        target = render(lab, seed)
        model.append(psnr(np.asarray(synth(lab.astype(np.int64))), target))
        other.append(psnr(render(lab, seed + 7919), target))
        grey.append(psnr(np.full_like(target, 128), target))
    return {"psnr_model": float(np.mean(model)), "psnr_renderer_other_seed": float(np.mean(other)),
            "psnr_grey": float(np.mean(grey)), "scenes": n}


def plot_losses(run: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sdk.train.trainer.runlog import read_metrics

    rows = read_metrics(run / "metrics.jsonl")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for key, ax in (("G_L1", axes[0]), ("G_GAN", axes[1]), ("D_real", axes[1]), ("D_fake", axes[1]),
                    ("G_feat", axes[0])):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if not pts:
            continue
        s, v = np.array(pts).T
        k = max(1, len(v) // 50)  # moving average over ~2% of the run
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(s[k - 1:], smooth, label=key)
    axes[0].set_title("generator reconstruction terms")
    axes[1].set_title("adversarial terms (hinge)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{PRESET} on procedural street scenes")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def training_record(manifest: Any, meta: dict[str, Any], run: Path, size: int, scores: dict[str, Any],
                    elapsed: float) -> str:
    """The bundle's TRAINING.md: model, run (steps, time, throughput, objective), size, quality."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rates = [r["perf/images_per_s"] for r in rows[-20:] if "perf/images_per_s" in r]
    cfg = meta["train_config"]
    text = f"""# {PRESET}: training record

A label-only SPADE generator (ngf {manifest.config['ngf']}, SPADE hidden width
{manifest.config['spade_hidden']}, {manifest.parameters / 1e6:.2f} M parameters) that synthesises at
{256 // manifest.config['scale']}x{512 // manifest.config['scale']} inside a 256x512 deploy graph
(the label map is sampled every {manifest.config['scale']} pixels; the image is upsampled bilinearly).
Trained with `scripts/train_demo.py` (config `train/configs/demo-spade.yaml`) on procedural street
scenes (`train/data/procedural.py`, seeds 0..{cfg['data']['num_samples'] - 1}); no dataset download.

| | |
|---|---|
| steps | {meta['step']} (batch {cfg['train']['batch_size']}, {meta['step'] * cfg['train']['batch_size']} images) |
| wall time | {elapsed / 60:.1f} min on 2 shared CPU cores, 1 torch thread, `nice -n 10` |
| throughput | {np.mean(rates) if rates else float('nan'):.2f} images/s (last logged intervals) |
| objective | hinge GAN + feature matching 10 + pixel L1 {cfg['loss']['lambda_l1']} (no VGG: no weights offline) |
| optimiser | Adam(0, 0.9), G {cfg['optim']['lr_G']} / D {cfg['optim']['lr_D']} (TTUR) |
| bundle size | {size / 1e6:.1f} MB |

## Quality (held-out scenes, seeds {HELD_OUT}..{HELD_OUT + scores['scenes'] - 1}, 256x512, onnxruntime)

| PSNR vs the renderer's image | dB |
|---|---|
| this model | {scores['psnr_model']:.2f} |
| the renderer itself with another seed (other colour tint and noise) | {scores['psnr_renderer_other_seed']:.2f} |
| a flat grey image | {scores['psnr_grey']:.2f} |

The renderer draws per-scene colour tints and pixel noise that no label-conditioned model can
predict, so the renderer-with-another-seed row is a practical ceiling. The loss curve is
`docs/demo_loss.png`.
"""
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    p.add_argument("--run", default=str(ROOT / "runs/demo-spade"))
    p.add_argument("--bundle", default=str(ROOT / "demo/spade-street"))
    p.add_argument("--resume", action="store_true", help="continue the run in --run")
    p.add_argument("--skip-train", action="store_true", help="export and evaluate the run's last checkpoint")
    p.add_argument("--eval-scenes", type=int, default=16)
    args = p.parse_args()
    run, bundle = Path(args.run), Path(args.bundle)

    from sdk.bundle import Bundle, write_manifest
    from sdk.export.bundle import build_bundle
    from sdk.train.trainer.checkpoint import list_checkpoints

    elapsed = None
    if not args.skip_train:
        _, elapsed, _ = train(run, args.minutes, args.resume)
    ckpt = list_checkpoints(run)[-1]
    meta = json.loads((ckpt / "meta.json").read_text())
    if elapsed is None:  # not trained by this call: the run folder's start and last-checkpoint times
        elapsed = (ckpt / "meta.json").stat().st_mtime - (run / "config.json").stat().st_mtime
    print(f"[demo] exporting {ckpt}")
    manifest = build_bundle(PRESET, bundle, checkpoints=[ckpt / "generator.safetensors"],
                            overrides=meta["overrides"], progress=lambda m: print(f"[export] {m}"))
    scores = evaluate(bundle, args.eval_scenes)
    print(f"[demo] PSNR {scores}")
    plot_losses(run, ROOT / "docs/demo_loss.png")

    size = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file())
    (bundle / "TRAINING.md").write_text(training_record(manifest, meta, run, size, scores, elapsed))
    write_manifest(bundle, Bundle(bundle, verify=False).manifest)  # list TRAINING.md
    print(f"[demo] wrote {bundle} ({size / 1e6:.1f} MB) and docs/demo_loss.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
