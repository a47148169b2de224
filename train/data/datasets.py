"""Training datasets: the folder layouts the official repositories read, and procedural scenes.

Every dataset returns a dict per sample:

* ``image``: float32 (3, H, W) in [-1, 1];
* ``label``: int64 (H, W) class ids in ``[0, num_classes)`` (absent for unconditional data);
* ``instance``: int64 (H, W) instance ids, where the layout has instance maps.

Label files become ids through the convention the official code of the model's family
reads them with (``sdk.conventions``): ADE20K values as they are (0..150), COCO-Stuff
255 -> 182 (SPADE, GroupDNet) or value + 1 with 255 -> 0 (OASIS, DP-SIMS), Cityscapes
labelIds and DeepFashion maps as they are. A dataset records its convention's name
(``.convention``), which checkpoints carry into exported bundles.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from sdk.conventions import ADE20K, CITYSCAPES, COCO_SPADE, DEEPFASHION, Convention

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class DatasetError(FileNotFoundError):
    """A dataset folder or file that is missing or unreadable; the message names it."""


def _open(path: Path, what: str) -> Any:
    from PIL import Image

    if not path.is_file():
        raise DatasetError(f"{what} {path} is missing")
    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # PIL raises several types for broken files
        raise DatasetError(f"{what} {path} cannot be read ({exc}); the file is malformed") from exc
    return img


def load_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """RGB file -> (3, H, W) float32 in [-1, 1], bicubic-resized to ``size``."""
    from PIL import Image

    img = _open(path, "image").convert("RGB")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, np.float32) / 127.5 - 1).permute(2, 0, 1).contiguous()


def load_ids(path: Path, size: tuple[int, int], what: str = "label map") -> np.ndarray:
    """Index / grayscale PNG -> (H, W) int64 ids, nearest-resized to ``size``."""
    from PIL import Image

    img = _open(path, what)
    if img.mode not in ("P", "L", "I", "I;16"):
        raise DatasetError(f"{what} {path} has mode {img.mode}; expected a single-channel id map")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(img).astype(np.int64)


def _files(folder: Path, pattern: str, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{what} folder {folder} is missing")
    found = sorted(folder.glob(pattern))
    if not found:
        raise DatasetError(f"{what} folder {folder} has no files matching {pattern}")
    return found


class PairedFolder(Dataset):
    """Images with a label map each (and optionally an instance map), matched by name."""

    def __init__(self, images: list[Path], labels: list[Path], size: tuple[int, int], num_classes: int,
                 instances: list[Path] | None = None, convention: Convention | None = None,
                 flip: bool = False) -> None:
        self.images, self.labels, self.instances = images, labels, instances
        self.size, self.num_classes, self.flip = size, num_classes, flip
        self.map_ids = convention
        self.convention = None if convention is None else convention.name

    def __len__(self) -> int:
        return len(self.images)

    def label_presence(self) -> torch.Tensor:
        """(num_images, num_classes) pixel counts, read from the label files only."""
        rows = []
        for path in self.labels:
            ids = load_ids(path, self.size)
            ids = self._map(ids, path) if self.map_ids is not None else ids
            rows.append(np.bincount(ids.ravel().clip(0, self.num_classes - 1), minlength=self.num_classes))
        return torch.from_numpy(np.stack(rows))

    def _map(self, values: np.ndarray, path: Path) -> np.ndarray:
        from sdk.errors import LabelError

        try:
            return self.map_ids.to_ids(values, f"label map {path}", fix="Is it the right dataset's file?")
        except LabelError as exc:
            raise DatasetError(str(exc)) from None

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        label = load_ids(self.labels[i], self.size)
        if self.map_ids is not None:
            label = self._map(label, self.labels[i])
        if label.min() < 0 or label.max() >= self.num_classes:
            raise DatasetError(f"label map {self.labels[i]} has ids {label.min()}..{label.max()} outside "
                               f"0..{self.num_classes - 1}")
        out = {"image": load_image(self.images[i], self.size), "label": torch.from_numpy(label)}
        if self.instances is not None:
            out["instance"] = torch.from_numpy(load_ids(self.instances[i], self.size, "instance map"))
        return _maybe_flip(out, self.flip, i)


def _maybe_flip(sample: dict[str, torch.Tensor], flip: bool, index: int) -> dict[str, torch.Tensor]:
    # The flip is a function of the index (and the epoch's shuffled order), not of global
    # RNG state, so data-loader workers and resumed runs see identical samples.
    if flip and (index * 2654435761) % 97 % 2:
        return {k: v.flip(-1) for k, v in sample.items()}
    return sample


def _paired(img_dir: Path, lab_dir: Path, img_glob: str, to_label: Callable[[Path], str], what: str,
            inst_dir: Path | None = None, to_inst: Callable[[Path], str] | None = None
            ) -> tuple[list[Path], list[Path], list[Path] | None]:
    images = _files(img_dir, img_glob, f"{what} image")
    if not lab_dir.is_dir():
        raise DatasetError(f"{what} label folder {lab_dir} is missing")
    labels = [lab_dir / to_label(p) for p in images]
    insts = [inst_dir / to_inst(p) for p in images] if inst_dir is not None and to_inst else None
    for group, kind in ((labels, "label map"), (insts or [], "instance map")):
        for p in group:
            if not p.is_file():
                raise DatasetError(f"{what}: {kind} {p} is missing")
    return images, labels, insts


def cityscapes(root: Path, split: str, size: tuple[int, int], num_classes: int = 35,
               instances: bool = True, flip: bool = False) -> PairedFolder:
    """``root/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png`` with ``root/gtFine/SPLIT/CITY/*_gtFine_labelIds.png``
    (and ``*_gtFine_instanceIds.png``)."""
    images = _files(root / "leftImg8bit" / split, "*/*_leftImg8bit.png", "Cityscapes image")
    stem = lambda p: p.name.removesuffix("_leftImg8bit.png")  # noqa: E731
    labels = [root / "gtFine" / split / p.parent.name / f"{stem(p)}_gtFine_labelIds.png" for p in images]
    insts = [root / "gtFine" / split / p.parent.name / f"{stem(p)}_gtFine_instanceIds.png"
             for p in images] if instances else None
    for p in labels + (insts or []):
        if not p.is_file():
            raise DatasetError(f"Cityscapes: {p} is missing")
    return PairedFolder(images, labels, size, num_classes, insts, CITYSCAPES, flip=flip)


def ade20k(root: Path, split: str, size: tuple[int, int], flip: bool = False) -> PairedFolder:
    """``root/ADEChallengeData2016/images/{training,validation}/*.jpg`` and ``annotations/.../*.png``."""
    base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
    sub = {"train": "training", "val": "validation"}.get(split, split)
    images, labels, _ = _paired(base / "images" / sub, base / "annotations" / sub, "*.jpg",
                                lambda p: p.stem + ".png", "ADE20K")
    return PairedFolder(images, labels, size, 151, convention=ADE20K, flip=flip)


def coco_stuff(root: Path, split: str, size: tuple[int, int], flip: bool = False,
               convention: Convention = COCO_SPADE) -> PairedFolder:
    """SPADE's layout: ``root/{train,val}_img/*.jpg``, ``_label/*.png``, ``_inst/*.png``; ids by
    ``convention`` (SPADE's by default; OASIS and DP-SIMS train with OASIS')."""
    images, labels, insts = _paired(root / f"{split}_img", root / f"{split}_label", "*.jpg",
                                    lambda p: p.stem + ".png", "COCO-Stuff", root / f"{split}_inst",
                                    lambda p: p.stem + ".png")
    return PairedFolder(images, labels, size, 183, insts, convention, flip=flip)


def deepfashion(root: Path, split: str, size: tuple[int, int], num_classes: int = 8,
                flip: bool = False) -> PairedFolder:
    """GroupDNet's layout: ``root/{train,test}_img/*.jpg`` (or .png) with ``_label/*.png`` parsing maps."""
    img_dir = root / f"{split}_img"
    glob = "*.jpg" if img_dir.is_dir() and any(img_dir.glob("*.jpg")) else "*.png"
    images, labels, _ = _paired(img_dir, root / f"{split}_label", glob, lambda p: p.stem + ".png", "DeepFashion")
    return PairedFolder(images, labels, size, num_classes, convention=DEEPFASHION, flip=flip)


class ImageFolder(Dataset):
    """Every image under ``root`` (CelebA-HQ: ``root/*.png`` or ``*.jpg``), unconditional."""

    def __init__(self, root: Path, size: tuple[int, int], flip: bool = False) -> None:
        if not root.is_dir():
            raise DatasetError(f"image folder {root} is missing")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise DatasetError(f"image folder {root} has no images ({', '.join(IMAGE_EXTS)})")
        self.size, self.flip = size, flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return _maybe_flip({"image": load_image(self.files[i], self.size)}, self.flip, i)


class ProceduralStreets(Dataset):
    """Procedural street scenes (``train.data.procedural``): scene ``i`` is seed ``seed_offset + i``.

    Scenes are drawn at ``source_size`` and reduced to ``size`` (labels nearest, images
    by area averaging), so a model trained below its deploy resolution sees labels
    reduced exactly as a deploy graph that resizes its input.
    """

    def __init__(self, size: tuple[int, int], num_samples: int = 10000, seed_offset: int = 0,
                 source_size: tuple[int, int] | None = None, flip: bool = False,
                 num_classes: int | None = None) -> None:
        from sdk.train.data.procedural import _BASE

        self.size, self.n, self.offset, self.flip = size, num_samples, seed_offset, flip
        self.source = source_size or size
        self.remap = None
        if num_classes is not None and num_classes <= max(_BASE):
            # models with fewer classes than the Cityscapes ids see the scene's classes as 0..6
            if num_classes < len(_BASE):
                raise DatasetError(f"procedural scenes have {len(_BASE)} classes; the model has {num_classes}")
            self.remap = np.zeros(256, np.int64)
            self.remap[sorted(_BASE)] = np.arange(len(_BASE))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from sdk.train.data.procedural import render, scene_label

        seed = self.offset + i
        lab = scene_label(seed, *self.source)
        img = torch.from_numpy(render(lab, seed).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
        if self.remap is not None:
            lab = self.remap[lab]
        label = torch.from_numpy(lab.astype(np.int64))
        if self.source != self.size:
            img = torch.nn.functional.interpolate(img[None], size=self.size, mode="area")[0]
            label = torch.nn.functional.interpolate(label[None, None].float(), size=self.size,
                                                    mode="nearest")[0, 0].long()
        return _maybe_flip({"image": img.contiguous(), "label": label}, self.flip, i)
