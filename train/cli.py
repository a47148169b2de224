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
    from sdk import __version__
    from sdk.cli import Parser

    p = Parser(prog="python -m train", description="Train a registered model from a YAML config.")
    p.add_argument("--version", action="version", version=f"sdk {__version__} (python -m train)")
    p.add_argument("--config", required=True, help="YAML config (see train/configs/)")
    p.add_argument("--out", help="run folder for checkpoints and logs (default runs/CONFIG_NAME)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    from sdk.train.data.datasets import DatasetError
    from sdk.train.models.registry import UnknownModelError
    from sdk.train.trainer.config import ConfigError
    from sdk.train.trainer.loop import ResumeError

    return ConfigError, DatasetError, ResumeError, UnknownModelError


def _train(args: argparse.Namespace) -> int:
    from sdk.train.trainer.config import check_weight_files, load_config
    from sdk.train.trainer.loop import Trainer

    cfg = load_config(args.config)
    check_weight_files(cfg)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    trainer = Trainer(cfg, out, resume=args.resume, max_steps=args.max_steps, progress=not args.no_progress)
    trainer.run()
    return 130 if trainer.stopped else 0


def main(argv: Sequence[str] | None = None) -> int:
    from sdk.cli import run_cli

    parser = build_parser()
    parser.set_defaults(func=_train)
    return run_cli(argv, parser, _user_errors)


if __name__ == "__main__":
    sys.exit(main())
