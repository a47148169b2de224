from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdk.train.data import datasets as D


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_procedural_reduces_like_the_deploy_graph():
    ds = D.ProceduralStreets((32, 64), num_samples=3, seed_offset=5, source_size=(256, 512))
    s = ds[1]
    assert s["image"].shape == (3, 32, 64) and s["label"].shape == (32, 64)
    assert -1 <= float(s["image"].min()) and float(s["image"].max()) <= 1
    from sdk.train.data.procedural import scene_label

    full = scene_label(6, 256, 512)
    assert np.array_equal(s["label"].numpy(), full[::8, ::8])  # nearest = every 8th pixel


def _cityscapes(root: Path, n: int = 2) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        stem = f"aachen_{i:06d}_000019"
        _png(root / "leftImg8bit/train/aachen" / f"{stem}_leftImg8bit.png", rng.integers(0, 255, (16, 32, 3), np.uint8))
        _png(root / "gtFine/train/aachen" / f"{stem}_gtFine_labelIds.png", rng.integers(0, 34, (16, 32), np.uint8))
        _png(root / "gtFine/train/aachen" / f"{stem}_gtFine_instanceIds.png",
             rng.integers(0, 5, (16, 32)).astype(np.uint8))


def test_cityscapes_layout(tmp_path: Path):
    _cityscapes(tmp_path)
    ds = D.cityscapes(tmp_path, "train", (8, 16))
    assert len(ds) == 2
    s = ds[0]
    assert s["image"].shape == (3, 8, 16) and s["label"].shape == (8, 16) and s["instance"].shape == (8, 16)


def test_cityscapes_missing_label_names_file(tmp_path: Path):
    _cityscapes(tmp_path)
    missing = tmp_path / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(D.DatasetError, match="aachen_000001_000019_gtFine_labelIds.png is missing"):
        D.cityscapes(tmp_path, "train", (8, 16))


def test_ade20k_label_files_keep_their_values(tmp_path: Path):
    """As the released SPADE / OASIS / SMIS checkpoints saw them: 0 ("other") .. 150, unshifted."""
    base = tmp_path / "ADEChallengeData2016"
    _png(base / "images/training/ADE_train_00000001.jpg", np.zeros((8, 8, 3), np.uint8))
    ann = np.array([[0, 1, 150, 7]] * 8, np.uint8).repeat(2, axis=1)
    _png(base / "annotations/training/ADE_train_00000001.png", ann)
    ds = D.ade20k(tmp_path, "train", (8, 8))
    assert ds[0]["label"][0].tolist() == [0, 0, 1, 1, 150, 150, 7, 7] and ds.convention == "ade20k/raw"
    _png(base / "annotations/training/ADE_train_00000001.png", np.full((8, 8), 151, np.uint8))
    with pytest.raises(D.DatasetError, match="holds 151 at .0, 0., which is not a ADE20K file value"):
        ds[0]


def test_malformed_file_is_named(tmp_path: Path):
    base = tmp_path / "ADEChallengeData2016"
    _png(base / "images/training/a.jpg", np.zeros((8, 8, 3), np.uint8))
    bad = base / "annotations/training/a.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    ds = D.ade20k(tmp_path, "train", (8, 8))
    with pytest.raises(D.DatasetError, match="a.png cannot be read"):
        ds[0]


def test_coco_deepfashion_imagefolder(tmp_path: Path):
    lab = np.full((8, 8), 255, np.uint8)
    _png(tmp_path / "coco/train_img/1.jpg", np.zeros((8, 8, 3), np.uint8))
    _png(tmp_path / "coco/train_label/1.png", lab)
    _png(tmp_path / "coco/train_inst/1.png", lab)
    assert int(D.coco_stuff(tmp_path / "coco", "train", (8, 8))[0]["label"].max()) == 182
    from sdk.conventions import COCO_OASIS

    lab[0, :4] = 3  # OASIS: 255 -> 0 and every class one up
    _png(tmp_path / "coco/train_label/1.png", lab)
    oasis = D.coco_stuff(tmp_path / "coco", "train", (8, 8), convention=COCO_OASIS)[0]["label"]
    assert oasis[0, :5].tolist() == [4, 4, 4, 4, 0]
    _png(tmp_path / "df/train_img/p.jpg", np.zeros((8, 8, 3), np.uint8))
    _png(tmp_path / "df/train_label/p.png", np.full((8, 8), 3, np.uint8))
    assert int(D.deepfashion(tmp_path / "df", "train", (8, 8))[0]["label"][0, 0]) == 3
    _png(tmp_path / "celeba/0.png", np.zeros((8, 8, 3), np.uint8))
    assert D.ImageFolder(tmp_path / "celeba", (4, 4))[0]["image"].shape == (3, 4, 4)
    with pytest.raises(D.DatasetError, match="image folder .*empty.* is missing|is missing"):
        D.ImageFolder(tmp_path / "empty", (4, 4))


def test_class_balanced_order_is_seeded(tmp_path: Path):
    import torch

    from sdk.train.trainer.distributed import DistInfo
    from sdk.train.trainer.loop import EpochData

    base = tmp_path / "ADEChallengeData2016"
    for i, cls in enumerate([1, 1, 1, 2]):  # class 2 is rare: its image is drawn more often
        _png(base / f"images/training/{i}.jpg", np.zeros((8, 8, 3), np.uint8))
        _png(base / f"annotations/training/{i}.png", np.full((8, 8), cls, np.uint8))
    ds = D.ade20k(tmp_path, "train", (8, 8))
    from sdk.train.families.dpsims.losses import class_balanced_weights

    w = class_balanced_weights(ds.label_presence(), threshold=0.5, ignore=(0,))
    assert w[3] > w[0]
    a = EpochData(ds, 2, 0, DistInfo(), 0, w).epoch_order()
    b = EpochData(ds, 2, 0, DistInfo(), 0, w).epoch_order()
    assert a == b and len(a) == 4 and torch.tensor(a).max() < 4
