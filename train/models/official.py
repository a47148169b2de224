"""Load the papers' released checkpoints into our networks, key for key.

Each model names its parts with ``official_parts()`` (checkpoint name -> submodule,
e.g. ``{"net_G": model.netG, "net_E": model.netE}``); a part's state_dict must load
strictly. Files are read with ``torch.load(weights_only=True)`` only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from sdk.train.models.spec import SynthesisModel


class CheckpointMismatch(ValueError):
    """An official checkpoint does not fit the network it is loaded into."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` / ``.pt`` (weights only) or ``.safetensors`` file into a flat state_dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointMismatch(
            f"cannot read {path} as a weights-only PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); pass the released .pth file "
            f"or a .safetensors file") from exc
    for key in ("state_dict", "model", "netG"):  # common wrappers around the state_dict
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatch(f"{path} does not hold a state_dict of tensors")
    # DataParallel / DDP checkpoints prefix every key with "module."
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_and_load(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with one error that lists every mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:12]) + (f" ... (+{len(items) - 12} more)" if len(items) > 12 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {show(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {show(shapes)}")
        raise CheckpointMismatch(
            f"{what} does not match this network; " + "; ".join(parts)
            + ". Check that the checkpoint was trained with this preset's configuration "
              "(dataset, number of classes, instance maps, upsampling layers).")
    module.load_state_dict(state, strict=True)


def load_official(model: SynthesisModel, paths: Mapping[str, str | Path]) -> None:
    """Load official checkpoint files into ``model``; ``paths`` maps a part name of
    ``model.official_parts()`` (e.g. ``"net_G"``) to its file."""
    parts = model.official_parts()
    for name, path in paths.items():
        if name not in parts:
            raise CheckpointMismatch(f"this model has no part {name!r}; its parts are {sorted(parts)}")
        check_and_load(parts[name], read_state_dict(path), f"checkpoint {path} ({name})")
