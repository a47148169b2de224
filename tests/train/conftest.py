"""Helpers for the trainer tests: a tiny SPADE config on procedural scenes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(**sections: dict[str, Any]) -> dict[str, Any]:
    """The demo preset at its CI width (32x64 internal), batch 2, no TensorBoard."""
    cfg: dict[str, Any] = {
        "model": {"name": "spade-demo-street", "overrides": {"ngf": 4, "spade_hidden": 8},
                  "D": {"ndf": 8, "n_layers": 2, "num_D": 1}},
        "data": {"kind": "procedural", "num_samples": 6},
        "train": {"batch_size": 2, "max_steps": 4, "seed": 3, "threads": 1, "ema_decay": 0.5},
        "log": {"every": 1, "image_every": 2, "checkpoint_every": 2, "keep_last": 2, "tensorboard": False},
        "loss": {"lambda_l1": 1.0},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    # OpenMP threads spin when the cores are shared; one thread is faster and deterministic
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
