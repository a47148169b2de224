"""Training checkpoints: one folder per step, written atomically, the last K kept.

::

    RUN/ckpt-00001000/
        generator.safetensors       the model's weights (what ``python -m export bundle`` loads)
        generator_ema.safetensors   the EMA generator, when the config keeps one
        discriminator.safetensors
        state.pt                    optimisers, grad scaler, step, RNG states, data position
        meta.json                   preset, config overrides, the model config and the training config
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sdk.atomic import atomic_dir

CKPT_RE = re.compile(r"^ckpt-(\d+)$")
GENERATOR_FILE = "generator.safetensors"
FORMAT = "sdk-train-checkpoint"  # meta.json "format" of these folders


def _save_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    # clone: state_dict tensors can share storage (tied weights), which safetensors refuses
    save_file({k: v.detach().contiguous().clone().cpu() for k, v in module.state_dict().items()}, str(path))


def _load_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing")
    module.load_state_dict(load_file(str(path)), strict=True)


def rng_state() -> dict[str, Any]:
    """RNG states in types ``torch.load(weights_only=True)`` accepts (no numpy arrays)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(run: Path) -> list[Path]:
    """Checkpoint folders of ``run``, oldest first."""
    if not run.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run.iterdir() if p.is_dir() and (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(run: Path, step: int, *, model: nn.Module, disc: nn.Module, ema: nn.Module | None,
                    state: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    """Write ``run/ckpt-STEP`` atomically and delete all but the newest ``keep_last``."""
    path = run / f"ckpt-{step:08d}"
    with atomic_dir(path) as tmp:
        _save_weights(model, tmp / GENERATOR_FILE)
        if ema is not None:
            _save_weights(ema, tmp / "generator_ema.safetensors")
        _save_weights(disc, tmp / "discriminator.safetensors")
        torch.save({**state, "rng": rng_state()}, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2, default=str) + "\n")
    if keep_last > 0:
        for old in list_checkpoints(run)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: Path, *, model: nn.Module, disc: nn.Module, ema: nn.Module | None
                    ) -> dict[str, Any]:
    """Load weights into the modules; returns the ``state.pt`` dict (RNG states not yet applied)."""
    _load_weights(model, path / GENERATOR_FILE)
    _load_weights(disc, path / "discriminator.safetensors")
    if ema is not None:
        ema_file = path / "generator_ema.safetensors"
        _load_weights(ema, ema_file if ema_file.is_file() else path / GENERATOR_FILE)
    state_file = path / "state.pt"
    if not state_file.is_file():
        raise FileNotFoundError(f"checkpoint file {state_file} is missing")
    return torch.load(state_file, map_location="cpu", weights_only=True)
