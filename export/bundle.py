"""Build a model bundle (see ``sdk.bundle``) from a preset, with random or loaded weights."""
from __future__ import annotations

import copy
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sdk.atomic import atomic_dir
from sdk.bundle import write_manifest
from sdk.classes import class_names
from sdk.conventions import (
    ADE20K_MINUS_ONE,
    CONVENTIONS,
    Convention,
    official_convention,
)
from sdk.export.label_lookup import MIN_CLASSES, OneHotLookupConv, use_label_lookup
from sdk.export.onnx_export import DEFAULT_OPSET, export_onnx, onnx_parity
from sdk.export.parity import PARITY_LIMIT, ParityError
from sdk.export.stable_norm import use_two_stage_instance_norm
from sdk.export.weights import write_shared_weights
from sdk.manifest import GraphRecord, Kind, Manifest, ParityRecord
from sdk.palettes import get_palette
from sdk.train.deploy.fold import calibrate_norm_stats, export_ready
from sdk.train.deploy.weights import deploy_state, is_deploy_weights
from sdk.train.models import SynthesisModel, get_preset
from sdk.train.models.config_codec import config_to_json
from sdk.train.models.official import (
    CheckpointMismatch,
    check_and_load,
    load_official,
    read_state_dict,
)

Progress = Callable[[str], None]


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("sdk", "torch", "onnx", "onnxscript", "onnxruntime", "safetensors", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _training_checkpoint(path: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """(weights file, meta) if ``path`` is a ``python -m train`` checkpoint folder or a file in one."""
    import json

    from sdk.train.trainer.checkpoint import FORMAT, GENERATOR_FILE

    path = Path(path)
    folder, weights = (path, path / GENERATOR_FILE) if path.is_dir() else (path.parent, path)
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointMismatch(f"{meta_file} is corrupt ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    if weights.suffix != ".safetensors" or not weights.is_file():
        raise CheckpointMismatch(f"{path}: expected the checkpoint's generator.safetensors "
                                 f"(or generator_ema.safetensors) in {folder}")
    return weights, meta


def load_checkpoints(model: SynthesisModel, paths: Sequence[str | Path]) -> None:
    """Load weights into ``model``: official part files (``*net_G.pth``, ``*net_E.pth``...,
    the part named in the file name), a full ``weights.safetensors`` of this model, or a
    training checkpoint (``RUN/ckpt-N/generator.safetensors``, ``generator_ema.safetensors``
    or the folder), whose recorded model config must equal ``model``'s."""

    parts = _parts(model)
    for path in paths:
        if not Path(path).exists():
            raise CheckpointMismatch(f"checkpoint {path} does not exist")
        train_ckpt = _training_checkpoint(path)
        if train_ckpt is not None:
            weights, meta = train_ckpt
            ours = config_to_json(model.config)
            theirs = meta.get("model_config", {})
            if theirs != ours or meta.get("family") not in (None, model.family):
                diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k, "<absent>") != theirs.get(k, "<absent>"))
                preset, overrides = meta.get("preset"), meta.get("overrides") or {}
                how = (f" with the same config overrides (build_bundle(..., overrides={overrides}))"
                       if overrides else "")
                raise CheckpointMismatch(
                    f"training checkpoint {path} was trained as preset {preset!r}"
                    f"{f' with overrides {overrides}' if overrides else ''}; the model being exported has "
                    f"another config (differs in {', '.join(diff) or 'family'}): export --model {preset}{how}")
            check_and_load(model, read_state_dict(weights), f"training checkpoint {weights}")
            continue
        stem = Path(path).stem
        matches = [p for p in parts if stem.endswith(p) or f"_{p}" in stem]
        if matches:
            load_official(model, {max(matches, key=len): path})
        elif len(paths) == 1 and Path(path).suffix == ".safetensors":
            check_and_load(model, read_state_dict(path), f"checkpoint {path}")
        elif len(parts) >= 1 and len(paths) == 1:
            first = next(iter(parts))  # a lone file is the generator
            load_official(model, {first: path})
        elif not parts:
            raise CheckpointMismatch(f"{path}: this model has no official checkpoint layout; give a "
                                     f"weights.safetensors of it or a `python -m train` checkpoint folder")
        else:
            raise CheckpointMismatch(f"cannot tell which part of the model {path} holds; name it like the "
                                     f"official files ({', '.join('latest_' + p + '.pth' for p in parts)})")


def _onnx_outputs(path: Path, spec: Any, seed: int) -> list[np.ndarray]:
    """The outputs of an ONNX file on one seeded batch (onnxruntime CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {s.name: x.numpy() for s, x in zip(spec.inputs, spec.examples(1, seed=seed))}
    return sess.run(None, feeds)


def label_convention(family: str, dataset: str | None, checkpoints: Sequence[str | Path]
                     ) -> tuple[Convention | None, str]:
    """(The label convention the bundle's weights were trained with, where that comes from).

    A ``python -m train`` checkpoint records it (older ones trained ADE20K with ``v - 1``);
    official checkpoints and random weights take the convention of the family's official code.
    """
    for path in checkpoints:
        found = _training_checkpoint(path)
        if found is None:
            continue
        meta = found[1]
        name = meta.get("label_convention")
        if name in CONVENTIONS:
            return CONVENTIONS[name], f"trained with python -m train ({Path(path).name})"
        kind = ((meta.get("train_config") or {}).get("data") or {}).get("kind")
        if name is None and kind == "ade20k":  # recorded before conventions were: the old trainer's shift
            return ADE20K_MINUS_ONE, "trained with python -m train before 0.2 (ADE20K ids v - 1)"
        if name is None and kind == "procedural":
            return official_convention(dataset, family), "trained on procedural scenes (Cityscapes label ids)"
        return official_convention(dataset, family), f"trained with python -m train on {kind} data"
    convention = official_convention(dataset, family)
    if checkpoints:
        return convention, "official checkpoint: the official code's convention"
    return convention, "random weights: the official code's convention for this preset"


def _parts(model: SynthesisModel) -> dict[str, Any]:
    try:
        return model.official_parts()
    except NotImplementedError:
        return {}


def label_path(spec: Any, lookups: int) -> dict[str, Any] | None:
    """How a graph reads its ``label`` input, per backend (recorded in the manifest)."""
    if not any(s.kind == Kind.LABEL for s in spec.inputs):
        return None
    return {
        "input": "class ids, int32 (N, H, W); resized (nearest) on the ids",
        "onnx": (f"{lookups} label convolutions as table lookups on the ids, the rest on a one-hot made "
                 f"in the graph" if lookups else "one-hot made in the graph, convolutions"),
        "torch": "one-hot made on the device, convolutions (tensor cores on GPU)",
        "why": (f"lookups where the label has >= {MIN_CLASSES} classes: measured faster on onnxruntime CPU; "
                "convolutions below (and on GPU, where a one-hot convolution costs microseconds)"),
    }


def build_bundle(name: str, out: str | Path, *, checkpoints: Sequence[str | Path] = (), seed: int = 0,
                 opset: int = DEFAULT_OPSET, overrides: dict[str, Any] | None = None,
                 parity_limit: float = PARITY_LIMIT, label_lookup: bool = True, onnx: bool = True,
                 progress: Progress | None = None, calibration_device: str = "cpu") -> Manifest:
    """Export preset ``name`` into the bundle folder ``out``; returns the manifest.

    ``label_lookup``: export convolutions over the one-hot label map with many classes
    as table lookups (``export.label_lookup``; same numbers, less work on CPUs). Parity
    is always measured against the unmodified network.

    ``onnx=False`` writes a torch-only bundle (weights and manifest, no ONNX graphs): the
    torch backend runs it, in seconds instead of the minutes a full-size ONNX export and
    its parity check take; onnxruntime and TensorRT refuse it.

    Without checkpoints the weights are random (seeded) and the normalisation
    statistics are calibrated on a few seeded batches (``sdk.train.deploy.fold.calibrate_norm_stats``)
    so the parity figures measure a well-conditioned network, on ``calibration_device``
    (``"cuda"``: seconds where 2 CPU cores took minutes at full size; the weights come back
    to the CPU). Nothing is written to ``out`` unless every graph exports and passes its
    parity check.

    The stages, each callable alone: :func:`load_network` (weights in), :func:`deployed_network`
    (lookups, two-stage instance norm), :func:`export_graph` (ONNX + parity, per graph),
    :func:`share_weights` (one weights file for every graph), :func:`bundle_manifest`.
    """
    say = progress or (lambda msg: None)
    model, ready = load_network(name, checkpoints, seed=seed, overrides=overrides,
                                calibration_device=calibration_device, say=say)
    deployed = deployed_network(ready, label_lookup)
    timings: dict[str, float] = {}
    with atomic_dir(out) as tmp:
        graphs_meta = {gname: export_graph(gname, spec, dspec, tmp, onnx=onnx, opset=opset, seed=seed,
                                           parity_limit=parity_limit, timings=timings, say=say)
                       for (gname, spec), dspec in zip(ready.graphs().items(), deployed.graphs().values())}
        weights_meta = share_weights(tmp, ready, graphs_meta, seed=seed, say=say)
        manifest = bundle_manifest(name, model, ready, graphs_meta, weights_meta, checkpoints,
                                   export={"onnx": onnx, "opset": opset, "seed": seed, "parity_limit": parity_limit,
                                           "label_lookup": {"enabled": label_lookup, "min_classes": MIN_CLASSES},
                                           **timings})
        manifest = write_manifest(tmp, manifest)
    return manifest


def load_network(name: str, checkpoints: Sequence[str | Path], *, seed: int, overrides: dict[str, Any] | None,
                 calibration_device: str, say: Progress) -> tuple[SynthesisModel, Any]:
    """Preset ``name`` with its weights: the model and its export-ready form (the parity reference).

    Weights come from a bundle's own safetensors, training or official checkpoints, or are
    random (seeded) with norm statistics calibrated on seeded batches on ``calibration_device``.
    """
    preset = get_preset(name)
    if overrides is None:  # a training checkpoint records the overrides it was trained with
        recorded = [tc[1].get("overrides") for tc in map(_training_checkpoint, checkpoints) if tc]
        overrides = next((o for o in recorded if o), None)
    torch.manual_seed(seed)
    model = preset.build(**(overrides or {}))
    deploy = [p for p in checkpoints if Path(p).suffix == ".safetensors" and is_deploy_weights(p)]
    if deploy:  # a bundle's own weights (export-ready layout): load them into the export-ready network
        if len(checkpoints) > 1:
            raise CheckpointMismatch(f"{deploy[0]} is a bundle's complete weights; give it alone")
        say(f"loading {deploy[0]} (a bundle's weights)")
        ready = export_ready(model.eval())
        check_and_load(ready, deploy_state(deploy[0]), f"bundle weights {deploy[0]}")
        return model, ready
    if checkpoints:
        say(f"loading {', '.join(str(p) for p in checkpoints)}")
        load_checkpoints(model, checkpoints)
    else:
        model.to(calibration_device)
        for spec in model.graphs().values():
            calibrate_norm_stats(spec.module, lambda step, spec=spec: tuple(
                x.to(calibration_device) for x in spec.examples(4, seed=10_000 + step)))
        model.to("cpu")
    return model, export_ready(model.eval())  # the parity reference: the network as trained


def deployed_network(ready: Any, label_lookup: bool) -> Any:
    """What is exported: a copy of ``ready`` with label convolutions as lookups (optional) and
    instance norm in two stages; the same numbers."""
    deployed = copy.deepcopy(ready)
    if label_lookup:
        use_label_lookup(deployed)
    use_two_stage_instance_norm(deployed)
    return deployed


def export_graph(gname: str, spec: Any, dspec: Any, folder: Path, *, onnx: bool, opset: int, seed: int,
                 parity_limit: float, timings: dict[str, float], say: Progress) -> GraphRecord:
    """Export one graph to ``folder/<gname>.onnx`` and check it against the one-hot network
    ``spec``; returns its manifest record (``timings`` gets the export time). With
    ``onnx=False`` the record has no file and no parity."""
    fname = f"{gname}.onnx"
    dspec = dspec.with_uint8_outputs()
    lookups = sum(isinstance(m, OneHotLookupConv) for m in dspec.module.modules())
    parity = None
    if onnx:
        say(f"exporting {gname} graph to ONNX (opset {opset})")
        start = time.perf_counter()
        export_onnx(dspec, folder / fname, opset=opset)
        timings[f"export_{gname}_s"] = round(time.perf_counter() - start, 2)
        say(f"checking {gname}: onnxruntime vs the one-hot network in PyTorch FP32")
        figures, levels = onnx_parity(spec, folder / fname, seed=seed, limit=parity_limit)
        parity = ParityRecord(reference="torch fp32 cpu, one-hot label input", metric="relative_l2",
                              labels="batch_N: per-pixel random class ids; blocks_batch_N: block label maps "
                                     "(uniform regions, edges on their boundaries) like real ones",
                              figures={"onnxruntime_cpu": figures}, u8_max_levels=levels)
    return GraphRecord(
        file=fname if onnx else None,
        inputs=list(dspec.inputs),
        outputs=list(dspec.outputs),
        dynamic_axes={s.name: {"0": "batch"} for s in (*dspec.inputs, *dspec.outputs)},
        parity=parity,
        label_lookups=lookups,
        label_path=label_path(dspec, lookups),
    )


def share_weights(folder: Path, ready: Any, graphs_meta: dict[str, GraphRecord], *, seed: int,
                  say: Progress) -> dict[str, Any]:
    """Write weights.safetensors once and point every ONNX graph's initializers at it; a graph
    that computes other numbers afterwards is an error."""
    say("writing weights.safetensors, shared by the torch backend and the ONNX graphs")
    onnx_files = {g: m.file for g, m in graphs_meta.items() if m.file}
    before = {g: _onnx_outputs(folder / f, ready.graphs()[g], seed) for g, f in onnx_files.items()}
    weights_meta = write_shared_weights(folder, ready.state_dict(), onnx_files)
    for g, f in onnx_files.items():  # the graphs read the same bytes from the shared file
        after = _onnx_outputs(folder / f, ready.graphs()[g], seed)
        if any(not np.array_equal(a, b) for a, b in zip(before[g], after)):
            raise ParityError(f"{f} computes other numbers after moving its weights to weights.safetensors")
    return weights_meta


def bundle_manifest(name: str, model: SynthesisModel, ready: Any, graphs_meta: dict[str, GraphRecord],
                    weights_meta: dict[str, Any], checkpoints: Sequence[str | Path], *,
                    export: dict[str, Any]) -> Manifest:
    """The manifest of a bundle: what the model is, how its labels read, its graphs and weights."""
    preset = get_preset(name)
    info = model.deploy_info()
    num_classes = info.get("num_classes")
    convention, convention_source = label_convention(preset.family, info.get("dataset"), checkpoints)
    return Manifest(
        name=name,
        family=preset.family,
        task=model.task,
        config=config_to_json(model.config),
        label=None if num_classes is None else {
            "format": "class_ids",
            "num_classes": num_classes,
            "instance_edge": any(s.kind == Kind.INSTANCE_EDGE for s in ready.graphs()["model"].inputs),
            "palette": get_palette(info.get("palette"), num_classes),
            "classes": class_names(convention.name if convention else None, num_classes),
            "convention": None if convention is None else {**convention.to_json(), "source": convention_source},
        },
        resolution=list(info["resolution"]),
        graphs=graphs_meta,
        weights={**weights_meta,
                 "source": [str(p) for p in checkpoints] or f"random, seed {export['seed']}",
                 "norm_stats": "learned" if checkpoints else "calibrated on 4 seeded random batches"},
        parameters=sum(p.numel() for p in model.parameters()),
        export=export,
        tools=tool_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
