"""Build the dataset a training config names."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from sdk.train.data import datasets as D


def build_dataset(data: Any, model_config: Any, train_size: tuple[int, int], family: str = "") -> Dataset:
    """``data`` is the config's ``DataSection``; ``train_size`` the (H, W) to train at;
    ``family`` picks the label convention where families differ (COCO-Stuff)."""
    kind, root = data.kind, Path(data.root)
    if kind != "procedural" and not data.root:
        raise D.DatasetError(f"data.root is required for data.kind {kind!r}")
    num_classes = getattr(model_config, "num_classes", None)
    if kind == "procedural":
        deploy = (model_config.height, model_config.width)
        return D.ProceduralStreets(train_size, data.num_samples, data.seed_offset, source_size=deploy,
                                   flip=data.flip, num_classes=num_classes)
    if kind == "cityscapes":
        inst = bool(getattr(model_config, "instance_edge", False))
        return D.cityscapes(root, data.split, train_size, num_classes or 35, inst, data.flip)
    if kind == "ade20k":
        return D.ade20k(root, data.split, train_size, data.flip)
    if kind == "coco-stuff":
        from sdk.conventions import official_convention

        return D.coco_stuff(root, data.split, train_size, data.flip, official_convention("coco", family))
    if kind == "deepfashion":
        return D.deepfashion(root, data.split, train_size, num_classes or 8, data.flip)
    if kind == "image-folder":
        return D.ImageFolder(root, train_size, data.flip)
    raise D.DatasetError(f"unknown data.kind {kind!r}; use procedural, cityscapes, ade20k, coco-stuff, "
                         "deepfashion or image-folder")
