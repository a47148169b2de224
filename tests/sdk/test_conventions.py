"""Dataset label files -> model ids, per bundle convention, against hand-computed ids.

A silent one-class shift is the worst outcome: every mapping is checked value by value,
and the fixtures (made here by code, in each dataset's file format) go through the
Synthesizer to the graph's feeds."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sdk import LabelError, Synthesizer
from sdk.classes import class_names
from sdk.conventions import (
    ADE20K,
    ADE20K_MINUS_ONE,
    CITYSCAPES,
    COCO_OASIS,
    COCO_SPADE,
    DEEPFASHION,
    official_convention,
)
from sdk.export.bundle import label_convention


@pytest.mark.parametrize("convention, values, expected", [
    (COCO_SPADE, [0, 5, 181, 255], [0, 5, 181, 182]),
    (COCO_OASIS, [0, 5, 181, 255], [1, 6, 182, 0]),
    (ADE20K, [0, 1, 150], [0, 1, 150]),
    (ADE20K_MINUS_ONE, [0, 1, 150], [150, 0, 149]),
    (CITYSCAPES, [0, 7, 26, 33], [0, 7, 26, 33]),
    (DEEPFASHION, [0, 3, 7], [0, 3, 7]),
])
def test_file_values_become_these_ids(convention, values, expected):
    got = convention.to_ids(np.array([values], np.uint8))
    assert got.tolist() == [expected]


@pytest.mark.parametrize("convention, bad, hint", [
    (COCO_SPADE, 182, "255"), (COCO_OASIS, 200, "value v -> id v + 1"), (ADE20K, 151, "0..150"),
    (CITYSCAPES, 255, "trainIds"), (DEEPFASHION, 8, "0..7")])
def test_values_outside_the_convention_are_named(convention, bad, hint):
    values = np.zeros((4, 5), np.uint8)
    values[2, 3] = bad
    with pytest.raises(LabelError) as err:
        convention.to_ids(values, "label")
    message = str(err.value)
    assert f"holds {bad} at (2, 3)" in message and hint in message and "label_format='ids'" in message


@pytest.mark.parametrize("family, dataset, expected", [
    ("spade", "coco", COCO_SPADE), ("oasis", "coco", COCO_OASIS), ("dpsims", "coco", COCO_OASIS),
    ("spade", "ade20k", ADE20K), ("oasis", "ade20k", ADE20K), ("groupdnet", "deepfashion", DEEPFASHION),
    ("pix2pixhd", "cityscapes", CITYSCAPES), ("progan", None, None)])
def test_official_conventions(family, dataset, expected):
    assert official_convention(dataset, family) == expected
    assert label_convention(family, dataset, [])[0] == expected


def test_training_checkpoints_carry_their_convention(tmp_path):
    ckpt = tmp_path / "ckpt-00000010"
    ckpt.mkdir()
    (ckpt / "generator.safetensors").write_bytes(b"")
    from sdk.train.trainer.checkpoint import FORMAT

    def meta(**extra):
        (ckpt / "meta.json").write_text(json.dumps({"format": FORMAT, **extra}))

    meta(label_convention="coco-stuff/oasis")
    assert label_convention("spade", "coco", [ckpt])[0] == COCO_OASIS
    meta(train_config={"data": {"kind": "ade20k"}})  # before conventions were recorded: the old v - 1
    assert label_convention("spade", "ade20k", [ckpt])[0] == ADE20K_MINUS_ONE
    meta(label_convention=None, train_config={"data": {"kind": "procedural"}})
    assert label_convention("spade", "cityscapes", [ckpt])[0] == CITYSCAPES


def test_class_names_follow_the_convention():
    assert class_names("coco-stuff/spade", 183)[0] == "person" and class_names("coco-stuff/spade", 183)[182] == "unlabeled"
    assert class_names("coco-stuff/oasis", 183)[0] == "unlabeled" and class_names("coco-stuff/oasis", 183)[1] == "person"
    assert class_names("ade20k/raw", 151)[:3] == ["other", "wall", "building"]
    assert class_names("cityscapes/labelIds", 35)[26] == "car" and class_names("cityscapes/labelIds", 35)[34] == "(unused)"
    assert class_names("deepfashion/cihp", 8) is None  # SMIS does not document the order


# -- fixture files through the Synthesizer ----------------------------------------------
def _spy(s: Synthesizer) -> dict:
    seen: dict = {}
    runner = s.runner()
    original = runner.run

    def run(feeds, outputs=None):
        seen.update({k: np.array(v) for k, v in feeds.items()})
        return original(feeds, outputs)

    runner.run = run
    return seen


def _blocks(h: int, w: int, values: list[int], block: int) -> np.ndarray:
    """Vertical stripes of ``block`` columns cycling through ``values``."""
    cols = np.array([values[(x // block) % len(values)] for x in range(w)])
    return np.tile(cols, (h, 1))


def test_coco_stuff_files_spade_and_oasis(small_bundle, tmp_path):
    """The same COCO-Stuff label file: SPADE feeds 255 as 182, OASIS as 0 and every class one up."""
    label = _blocks(128, 128, [0, 23, 255, 181], 32).astype(np.uint8)
    inst = np.zeros((128, 128), np.uint8)
    inst[:, 40:50] = 7  # one instance inside the second stripe: its borders are edges
    Image.fromarray(label, "L").save(tmp_path / "val_label.png")
    Image.fromarray(inst, "L").save(tmp_path / "val_inst.png")
    spade = Synthesizer.from_pretrained(small_bundle("spade-coco"))
    assert spade.bundle.label["convention"]["name"] == "coco-stuff/spade"
    seen = _spy(spade)
    spade(str(tmp_path / "val_label.png"), instance=str(tmp_path / "val_inst.png"))
    assert seen["label"][0, 0, ::32].tolist() == [0, 23, 182, 181]
    edges = seen["instance_edge"][0, 0]
    assert edges[39:41].tolist() == [1, 1] and edges[49:51].tolist() == [1, 1] and edges[30:33].tolist() == [0, 0, 0]
    oasis = Synthesizer.from_pretrained(small_bundle("oasis-coco"))
    assert oasis.bundle.label["convention"]["name"] == "coco-stuff/oasis"
    assert oasis.bundle.resolution == (256, 256)  # the 128x128 file is resized (nearest, x2)
    seen = _spy(oasis)
    oasis(str(tmp_path / "val_label.png"))
    assert seen["label"][0, 0, ::64].tolist() == [1, 24, 0, 182]
    # model ids from code: the explicit switch takes them as they are
    model_ids = np.full((256, 256), 182, np.int64)
    oasis_model = Synthesizer.from_pretrained(small_bundle("oasis-coco"), label_format="ids")
    seen = _spy(oasis_model)
    oasis_model(model_ids)
    assert int(seen["label"].max()) == 182 and int(seen["label"].min()) == 182
    with pytest.raises(LabelError, match="182 at .0, 0., which is not a COCO-Stuff file value"):
        oasis(model_ids)  # in dataset mode 182 is no file value: refused, not shifted


def test_ade20k_file_keeps_its_values(small_bundle, tmp_path):
    h, w = 128, 128
    ann = _blocks(h, w, [0, 1, 150, 12], 16).astype(np.uint8)
    Image.fromarray(ann, "L").save(tmp_path / "ADE_val_00000001.png")
    s = Synthesizer.from_pretrained(small_bundle("spade-ade20k"))
    seen = _spy(s)
    s(str(tmp_path / "ADE_val_00000001.png"))
    assert seen["label"][0, 0, ::16].tolist() == [0, 1, 150, 12, 0, 1, 150, 12]


def test_cityscapes_files_at_the_dataset_size_are_resized_as_the_official_test(small_bundle, tmp_path, caplog):
    """A 1024x2048 labelIds / 16-bit instanceIds pair: resized (PIL nearest: the centre pixel of
    each 8x8 cell) to the 128x256 bundle with one notice, ids unchanged, edges after resizing."""
    h, w = 1024, 2048
    label = np.zeros((h, w), np.uint8)
    label[:, :] = 7  # road
    label[4::8, 4::8] = 26  # the centre of each 8x8 cell is a car: what the official resize keeps
    inst = np.full((h, w), 7, np.uint16)
    inst[:, 1024:] = 26001  # two car instances (class * 1000 + k), split at column 1024 (=128 after)
    inst[:, 1536:] = 26002
    Image.fromarray(label, "L").save(tmp_path / "x_gtFine_labelIds.png")
    Image.fromarray(inst).save(tmp_path / "x_gtFine_instanceIds.png")
    assert Image.open(tmp_path / "x_gtFine_instanceIds.png").mode.startswith("I")  # 16-bit PNG
    s = Synthesizer.from_pretrained(small_bundle("spade-cityscapes"))
    seen = _spy(s)
    with caplog.at_level("WARNING", logger="sdk"):
        s(str(tmp_path / "x_gtFine_labelIds.png"), instance=str(tmp_path / "x_gtFine_instanceIds.png"))
    assert seen["label"].shape == (1, 128, 256) and np.all(seen["label"] == 26)
    edges = seen["instance_edge"][0]
    assert np.flatnonzero(edges[0]).tolist() == [127, 128, 191, 192]
    notices = [r.getMessage() for r in caplog.records if "resized" in r.getMessage()]
    assert notices and "1024x2048" in notices[0] and "128x256" in notices[0]
    Image.fromarray(np.full((h, w), 255, np.uint8), "L").save(tmp_path / "y_gtFine_trainIds.png")
    with pytest.raises(LabelError, match="trainIds"):
        s(str(tmp_path / "y_gtFine_trainIds.png"))
    Image.fromarray(np.zeros((100, 300), np.uint8), "L").save(tmp_path / "odd.png")
    with pytest.raises(LabelError, match="resize_ids"):  # another aspect ratio: refused, not squashed
        s(str(tmp_path / "odd.png"))


def test_deepfashion_parsing_map(small_bundle, tmp_path):
    parsing = _blocks(256, 256, [0, 1, 2, 3, 4, 5, 6, 7], 32).astype(np.uint8)
    Image.fromarray(parsing, "L").save(tmp_path / "parsing.png")
    g = Synthesizer.from_pretrained(small_bundle("groupdnet-deepfashion"))  # 128x128 at CI size
    seen = _spy(g)
    g(str(tmp_path / "parsing.png"), seed=0)
    assert seen["label"][0, 0, ::16].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


def test_palette_pngs_are_model_ids(small_bundle, tmp_path):
    """An RGB label in the bundle's palette stands for model ids: no convention applies."""
    s = Synthesizer.from_pretrained(small_bundle("oasis-coco"))
    palette = np.asarray(s.bundle.label["palette"], np.uint8)
    ids = _blocks(*s.bundle.resolution, [0, 5, 182], 8)
    Image.fromarray(palette[ids]).save(tmp_path / "rgb.png")
    seen = _spy(s)
    s(str(tmp_path / "rgb.png"))
    assert seen["label"][0, 0, :24:8].tolist() == [0, 5, 182]
