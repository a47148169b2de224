"""How each dataset's annotation files become the class ids a model was trained with.

The same file means different ids to different checkpoints. Read from the official
code (file and line in each entry's ``origin``):

* **COCO-Stuff** ``*_label.png`` holds 0..181 (COCO category id - 1) and 255 (unlabeled).
  NVlabs/SPADE keeps 0..181 and maps 255 to 182 (``data/pix2pix_dataset.py``: 255 ->
  ``label_nc``); boschresearch/OASIS adds 1 and maps 255 to 0 (``CocoStuffDataset``:
  ``label * 255 + 1``, 256 -> 0). The same file is one class apart between the two.
* **ADE20K** annotations hold 0..150 (0: "other"). NVlabs/SPADE's
  ``ade20k_dataset.postprocess`` computes ``label - 1`` into a copy that is never returned
  (and ``pix2pix_dataset`` ignores the return value), so its released checkpoints, like
  OASIS' and SMIS', saw the raw values. This SDK's trainer applied ``label - 1`` (0 ->
  150) before version 0.2: such checkpoints carry :data:`ADE20K_MINUS_ONE`.
* **Cityscapes** ``*_gtFine_labelIds.png`` holds 0..33: the ids as they are (35 one-hot
  channels; 34 is never set). ``*_gtFine_instanceIds.png`` (16-bit, ``class*1000 + k``
  for instances) gives the instance edges. ``*_trainIds.png`` (0..18, 255) is another
  numbering: refused, since 255 is not a labelId.
* **DeepFashion** (Seanseattle/SMIS) parsing maps hold 0..7: the ids as they are.

A bundle records its convention in ``manifest.label.convention`` (chosen at export from
where the weights came from); the SDK maps files through it unless told that the maps
hold model ids already (``label_format="ids"``). Instance maps only yield edges (a pixel whose
left/right/top/bottom neighbour has another id), so their numbering never matters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .deprecation import deprecated
from .errors import LabelError

LABEL_FORMATS = ("dataset", "ids")
"""What label maps hold (``label_format=``, CLI ``--label-format``): the dataset's file
values, mapped to model ids through the bundle's convention, or the model's class ids."""
OLD_LABEL_FORMATS = {"model": "ids"}
"""Values of the switch before it was named ``label_format`` (deprecated, kept one version)."""


@dataclass(frozen=True)
class Convention:
    """Dataset file values -> model ids: ``id = value + offset`` for values in
    ``[low, high]``, plus ``special`` values (``{255: 182}``); anything else is an error."""

    name: str
    dataset: str
    summary: str
    origin: str
    low: int
    high: int
    offset: int = 0
    special: dict[int, int] = field(default_factory=dict)
    resize: str = "aspect"  # "aspect": only maps of the model's aspect ratio are resized; "any": squashed
    hint: str = ""  # added to the error about an out-of-convention value

    def to_ids(self, values: np.ndarray, what: str = "label",
               fix: str = ("If the map holds model ids already, read it with label_format='ids' "
                           "(CLI: --label-format ids)")) -> np.ndarray:
        """Map a file's values (any integer dtype) to int32 model ids, in one new array; a
        value outside the convention is an error naming it, where it is, what the convention
        takes and ``fix``."""
        values = np.asarray(values)
        out = values.astype(np.int32)
        if self.offset:
            out += self.offset
        inside = (values >= self.low) & (values <= self.high)
        for raw, model_id in self.special.items():
            hit = values == raw
            out[hit] = model_id
            inside |= hit
        if not inside.all():
            y, x = (int(v) for v in np.argwhere(~inside)[0][-2:])
            bad = values[..., y, x].ravel()[0] if values.ndim > 2 else values[y, x]
            takes = f"{self.low}..{self.high}" + "".join(f", {k}" for k in self.special)
            raise LabelError(f"{what} holds {int(bad)} at ({y}, {x}), which is not a {self.dataset} file value "
                             f"({takes}; {self.summary}){self.hint}. {fix}")
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["special"] = {str(k): v for k, v in self.special.items()}
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Convention":
        return cls(**{**data, "special": {int(k): v for k, v in (data.get("special") or {}).items()}})


CITYSCAPES = Convention(
    "cityscapes/labelIds", "Cityscapes", "*_gtFine_labelIds.png values 0..33 are the ids",
    "NVlabs/SPADE data/cityscapes_dataset.py, boschresearch/OASIS, NVIDIA/pix2pixHD, Seanseattle/SMIS: raw labelIds",
    0, 33, hint=" (trainIds files, 0..18 and 255, are another numbering: give *_gtFine_labelIds.png)")
ADE20K = Convention(
    "ade20k/raw", "ADE20K", "annotation values 0..150 are the ids (0: other)",
    "NVlabs/SPADE data/ade20k_dataset.py (postprocess result unused), boschresearch/OASIS, Seanseattle/SMIS",
    0, 150, resize="any")
ADE20K_MINUS_ONE = Convention(
    "ade20k/minus-one", "ADE20K", "annotation value v -> id v - 1, 0 (other) -> 150",
    "sdk's trainer before 0.2 (train/data/datasets.py ade20k_ids)", 1, 150, offset=-1, special={0: 150},
    resize="any")
COCO_SPADE = Convention(
    "coco-stuff/spade", "COCO-Stuff", "values 0..181 are the ids, 255 (unlabeled) -> 182",
    "NVlabs/SPADE data/pix2pix_dataset.py: label[label == 255] = label_nc (182)", 0, 181, special={255: 182},
    resize="any")
COCO_OASIS = Convention(
    "coco-stuff/oasis", "COCO-Stuff", "value v -> id v + 1, 255 (unlabeled) -> 0",
    "boschresearch/OASIS dataloaders/CocoStuffDataset.py: label * 255 + 1, 256 -> 0", 0, 181, offset=1,
    special={255: 0}, resize="any")
DEEPFASHION = Convention(
    "deepfashion/cihp", "DeepFashion", "parsing map values 0..7 are the ids",
    "Seanseattle/SMIS data/deepfashion_dataset.py: raw values, label_nc 8", 0, 7, resize="any")

CONVENTIONS = {c.name: c for c in (CITYSCAPES, ADE20K, ADE20K_MINUS_ONE, COCO_SPADE, COCO_OASIS, DEEPFASHION)}

# dataset (the preset's palette / data kind) -> family -> convention of its official code
_OFFICIAL = {
    "cityscapes": {None: CITYSCAPES},
    "ade20k": {None: ADE20K},
    "coco": {None: COCO_SPADE, "oasis": COCO_OASIS, "dpsims": COCO_OASIS},
    "deepfashion": {None: DEEPFASHION},
}


def official_convention(dataset: str | None, family: str) -> Convention | None:
    """The convention the official code of ``family`` reads ``dataset`` with (DP-SIMS has no
    official code: it follows OASIS, whose generator and loss it extends), or None."""
    table = _OFFICIAL.get(dataset or "")
    if table is None:
        return None
    return table.get(family, table[None])


def check_label_format(label_format: str, labels: str | None = None) -> str:
    """The label format a call asked for: ``"dataset"`` or ``"ids"``.

    ``labels`` is the switch's old keyword and ``"model"`` its old value for ``"ids"``: both
    still work for one version, with a :class:`DeprecationWarning`.
    """
    if labels is not None:
        new = OLD_LABEL_FORMATS.get(labels, labels)
        if label_format not in ("dataset", new):
            raise LabelError(f"give label_format= alone (labels= is its old name); got label_format="
                             f"{label_format!r} and labels={labels!r}")
        deprecated(f"labels={labels!r} is deprecated (it goes in the next version): use label_format={new!r}")
        label_format = new
    if label_format in OLD_LABEL_FORMATS:
        new = OLD_LABEL_FORMATS[label_format]
        deprecated(f"label format {label_format!r} is deprecated (it goes in the next version): use {new!r}")
        return new
    if label_format not in LABEL_FORMATS:
        raise LabelError(f"label_format must be 'dataset' (the dataset's files, mapped by the bundle's convention) "
                         f"or 'ids' (model class ids already), got {label_format!r}")
    return label_format


def check_mode(labels: str) -> str:
    """Deprecated: :func:`check_label_format` (``"model"`` comes back as ``"ids"``)."""
    deprecated("sdk.conventions.check_mode is deprecated: use check_label_format")
    return check_label_format(labels)


LABEL_MODES = ("dataset", "model")
"""Deprecated: :data:`LABEL_FORMATS` (the switch's values before ``label_format``)."""

__all__ = ["CONVENTIONS", "Convention", "LABEL_FORMATS", "LABEL_MODES", "OLD_LABEL_FORMATS", "check_label_format",
           "check_mode", "official_convention"]
