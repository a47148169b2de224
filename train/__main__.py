"""``python -m train --config CONFIG.yaml [--out DIR] [--max-steps N] [--resume]``

Also under torchrun: ``torchrun --nproc_per_node K -m train --config ...`` trains with
DistributedDataParallel (one process per GPU; gloo on CPU).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a registered model from a YAML config.")
    p.add_argument("--config", required=True, help="YAML config (see train/configs/)")
    p.add_argument("--out", help="run folder for checkpoints and logs (default runs/CONFIG_NAME)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data.datasets import DatasetError
    from .models.registry import UnknownModelError
    from .trainer.config import ConfigError, load_config
    from .trainer.loop import ResumeError, Trainer

    try:
        cfg = load_config(args.config)
        out = Path(args.out or Path("runs") / Path(args.config).stem)
        trainer = Trainer(cfg, out, resume=args.resume, max_steps=args.max_steps, progress=not args.no_progress)
        trainer.run()
    except (ConfigError, DatasetError, ResumeError, UnknownModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 130 if trainer.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
