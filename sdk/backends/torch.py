"""torch backend: rebuilds the network from the bundle's config and weights.

Needs the ``torch`` extra and the ``train`` package (the network code). ``compile=True``
wraps the graph in ``torch.compile`` (CUDA graphs on GPU with mode="reduce-overhead").
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..bundle import Bundle
from ..errors import BackendError, BundleError
from .base import Runner


def build_model(bundle: Bundle) -> Any:
    """The bundle's network in eval mode, export-clean (spectral norm folded)."""
    try:
        from safetensors.torch import load_file

        from export.fold import export_ready
        from train.models import get_preset
        from train.models.official import CheckpointMismatch, check_and_load
    except ImportError as exc:
        raise BackendError(f"the torch backend needs the torch extra ({exc}); pip install 'sdk[torch]'") from exc
    preset = get_preset(bundle.name)
    config = config_from_json(type(preset.config), bundle.manifest["config"])
    model = preset.model_cls(config)
    weights = bundle.file("weights.safetensors")
    if not weights.is_file():
        raise BundleError(f"{weights} is missing; the torch backend needs the bundle's weights")
    try:
        check_and_load(model, load_file(str(weights)), f"bundle weights {weights}")
    except CheckpointMismatch as exc:
        raise BundleError(str(exc)) from exc
    return export_ready(model)


def config_from_json(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from JSON (lists back to tuples where the field is a tuple)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BundleError(f"bundle config has unknown fields {unknown} for {cls.__name__}; "
                          f"it was written by another version of sdk: re-export it")
    values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
              for k, v in data.items()}
    return cls(**values)


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, bundle: Bundle, graph: str = "model", *, device: str | None = None,
                 compile: bool = False, model: Any = None) -> None:
        super().__init__(bundle, graph)
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model if model is not None else build_model(bundle)
        spec = model.graphs()[graph]
        self.input_order = [s.name for s in spec.inputs]
        self.module = spec.module.to(self.device).eval()
        if compile:
            self.module = torch.compile(self.module, mode="reduce-overhead" if self.device.type == "cuda" else None)
        self.compiled = compile

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(feeds[n]).to(self.device) for n in self.input_order]
        with torch.inference_mode():
            out = self.module(*args)
        out = out if isinstance(out, tuple) else (out,)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return {n: o.float().cpu().numpy() for n, o in zip(self.output_names, out)}

    def describe(self) -> str:
        return f"torch {'compiled' if self.compiled else 'eager'} {self.device}"
