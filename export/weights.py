"""One copy of the weights per bundle: ``weights.safetensors`` serves the torch backend and
holds the ONNX graphs' initializers, which the graphs reference as external data.

The file stores the *deploy* weights: the state of the export-ready network (spectral
norm folded, SyncBatchNorm as BatchNorm; ``sdk.train.deploy.fold.export_ready``), which the torch
backend loads into an export-ready network of the same config. ONNX initializers that
are byte-for-byte one of those tensors point at it (offset and length inside the
safetensors file: the ONNX external-data format allows any file and offset); the others
(tensors the exporter derived, label-lookup tables) are stored once more under
``onnx/<graph>/<name>``. A spade-cityscapes-vae bundle was 853 MB with two copies.

The file's metadata says ``{"sdk.weights": "deploy"}``; a training-layout file (a
checkpoint, or a bundle written before) has none.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from sdk.atomic import default_umask
from sdk.train.deploy.weights import DEPLOY_MARK, ONNX_PREFIX

MIN_EXTERNAL_BYTES = 1024
"""Initializers smaller than this stay inside the graph (shape constants, scalars)."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_shared_weights(folder: Path, state: dict[str, torch.Tensor], graphs: dict[str, str],
                         name: str = "weights.safetensors") -> dict[str, Any]:
    """Write ``folder/name`` (``state`` + the ONNX initializers it lacks) and rewrite each ONNX
    file of ``graphs`` (graph -> file in ``folder``) to read its initializers from it.

    Returns figures for the manifest: tensors shared with the torch state, stored for ONNX
    only, kept inline, and the bytes saved against two copies.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    by_bytes = {_digest(t.numpy().tobytes()): k for k, t in tensors.items()}
    models = {g: onnx.load(str(folder / f)) for g, f in graphs.items()}
    refs: dict[str, dict[str, str]] = {}  # graph -> initializer -> safetensors key
    shared = extra = inline = saved = 0
    for g, model in models.items():
        refs[g] = {}
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.nbytes < MIN_EXTERNAL_BYTES:
                inline += 1
                continue
            key = by_bytes.get(_digest(np.ascontiguousarray(arr).tobytes()))
            if key is None or tuple(tensors[key].shape) != arr.shape:
                key = f"{ONNX_PREFIX}{g}/{init.name}"
                tensors[key] = torch.from_numpy(np.ascontiguousarray(arr).copy())
                by_bytes[_digest(arr.tobytes())] = key
                extra += 1
            else:
                shared += 1
                saved += arr.nbytes
            refs[g][init.name] = key
    path = folder / name
    save_file(tensors, str(path), metadata=DEPLOY_MARK)
    os.chmod(path, 0o666 & ~default_umask())  # safetensors writes 0600
    offsets = _data_offsets(path)
    for g, model in models.items():
        for init in model.graph.initializer:
            key = refs[g].get(init.name)
            if key is None:
                continue
            begin, end = offsets[key]
            init.ClearField("raw_data")
            for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                init.ClearField(field)
            init.data_location = onnx.TensorProto.EXTERNAL
            del init.external_data[:]
            for k, v in (("location", name), ("offset", str(begin)), ("length", str(end - begin))):
                entry = init.external_data.add()
                entry.key, entry.value = k, v
        onnx.save_model(model, str(folder / graphs[g]))
    return {"file": name, "layout": "deploy (export-ready network: spectral norm folded)",
            "onnx_initializers": {"shared_with_torch": shared, "onnx_only": extra, "inline": inline},
            "bytes_saved": saved}


def _data_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """Absolute (begin, end) byte offsets of every tensor in a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    base = 8 + n
    return {k: (base + v["data_offsets"][0], base + v["data_offsets"][1])
            for k, v in header.items() if k != "__metadata__"}
