"""The deploy weights file of a bundle (``weights.safetensors``): the export-ready
network's state, plus ONNX-only tensors under ``onnx/<graph>/`` (written by
``sdk.export.weights``, which explains the layout)."""
from __future__ import annotations

from pathlib import Path

import torch

DEPLOY_MARK = {"sdk.weights": "deploy"}


ONNX_PREFIX = "onnx/"


def is_deploy_weights(path: str | Path) -> bool:
    """True for a ``weights.safetensors`` written by :func:`write_shared_weights`."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("sdk.weights") == "deploy"
    except Exception:  # not a safetensors file: a .pth checkpoint
        return False


def deploy_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The torch tensors of a deploy weights file (the ONNX-only ones left out)."""
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if not k.startswith(ONNX_PREFIX)}
