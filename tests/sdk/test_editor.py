"""``Synthesizer.editor``: editing sessions on CI-size bundles, each update against a plain call.

On the torch backend every local family (SPADE, OASIS, GroupDNet) updates incrementally and
gives the image of ``s(label, seed=...)`` within 1 level of 8 bits; onnxruntime and the
families that are not local run full passes and say why in one line.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.edits import block_map, brush_stroke, region_relabel
from sdk import EditResult, LabelError, SDKError, Synthesizer
from sdk.labels import instance_edges

QUALIFYING = ["spade-ade20k", "spade-cityscapes", "oasis-ade20k", "groupdnet-deepfashion"]
ORT_REASON = "incremental updates need the torch runner (backend='torch'); onnxruntime runs full passes"


def open_torch(small_bundle, name: str) -> Synthesizer:
    return Synthesizer.from_pretrained(small_bundle(name), backend="torch", label_format="ids", device="cpu", threads=1)


def base_map(s: Synthesizer, seed: int = 0) -> np.ndarray:
    return block_map(s.bundle.resolution, s.bundle.num_classes, seed)


def levels(image: Image.Image, ref: Image.Image) -> int:
    return int(np.abs(np.asarray(image, dtype=int) - np.asarray(ref, dtype=int)).max())


def changed(s: Synthesizer, a: np.ndarray, b: np.ndarray) -> float:
    diff = a != b
    if s.intake.wants_edges:  # the editor counts the instance edges the intake derives too
        diff |= instance_edges(a[None])[0] != instance_edges(b[None])[0]
    return float(diff.mean())


@pytest.mark.parametrize("name", QUALIFYING)
def test_editor_updates_incrementally_and_match_a_call(small_bundle, name):
    s = open_torch(small_bundle, name)
    ids = base_map(s)
    classes = s.bundle.num_classes
    with s.editor(ids, seed=3) as ed:
        assert ed.reason is None and levels(ed.image, s(ids, seed=3)) <= 1
        assert not ed.result.incremental and ed.result.reason == "first pass of the session"
        last = ids
        for new in (brush_stroke(ids, 0.02, classes, seed=1), region_relabel(ids, 0.05, classes, seed=2), ids):
            res = ed.update(new)
            assert isinstance(res, EditResult) and res is ed.result and res.image is ed.image
            assert res.incremental and res.reason == "" and 0 < res.recomputed < 1 and res.ms > 0
            assert res.changed == pytest.approx(changed(s, last, new))
            assert res.image.size == s.bundle.resolution[::-1] and levels(res.image, s(new, seed=3)) <= 1
            last = new
    with pytest.raises(SDKError, match="editor is closed"):
        ed.update(ids)


def test_editor_keeps_given_codes_and_reads_files_through_the_intake(small_bundle, tmp_path):
    s = open_torch(small_bundle, "groupdnet-deepfashion")
    ids = base_map(s, seed=1)
    codes = np.random.default_rng(0).standard_normal((s.bundle.num_classes, s.codes_shape[1])).astype(np.float32)
    path = tmp_path / "label.png"
    Image.fromarray(ids.astype(np.uint8)).save(path)
    with s.editor(path, codes=codes) as ed:
        assert levels(ed.image, s(ids, codes=codes)) <= 1
        new = brush_stroke(ids, 0.05, s.bundle.num_classes, seed=4)
        buf = io.BytesIO()
        Image.fromarray(new.astype(np.uint8)).save(buf, format="PNG")
        for given in (buf.getvalue(), s.intake.read(new)):  # PNG bytes, a Label read already
            res = ed.update(given)
            assert levels(res.image, s(new, codes=codes)) <= 1
        assert res.incremental and res.changed == 0.0 and res.recomputed == 0.0  # the same map again


def test_onnxruntime_editor_runs_full_passes_and_says_why(small_bundle):
    s = Synthesizer.from_pretrained(small_bundle("spade-ade20k"), backend="onnxruntime", label_format="ids", threads=1)
    ids = base_map(s)
    with s.editor(ids, seed=0) as ed:
        assert ed.reason == ORT_REASON
        new = brush_stroke(ids, 0.02, s.bundle.num_classes)
        res = ed.update(new)
        assert not res.incremental and res.reason == ORT_REASON and res.recomputed == 1.0
        assert res.changed == pytest.approx(changed(s, ids, new))
        assert np.array_equal(np.asarray(res.image), np.asarray(s(new, seed=0)))


def test_a_family_that_is_not_local_runs_full_passes_on_torch(small_bundle):
    s = open_torch(small_bundle, "dpsims-ade20k")
    ids = base_map(s)
    with s.editor(ids, seed=0) as ed:
        assert ed.reason.startswith("dpsims is not local: attention") and "\n" not in ed.reason
        new = brush_stroke(ids, 0.02, s.bundle.num_classes)
        res = ed.update(new)
        assert not res.incremental and res.reason == ed.reason and levels(res.image, s(new, seed=0)) <= 1


def test_bad_labels_and_a_new_size_are_one_line_and_leave_the_session(small_bundle):
    s = open_torch(small_bundle, "oasis-ade20k")
    ids = base_map(s)
    h, w = ids.shape
    with s.editor(ids, seed=0) as ed:
        cases = [(np.full((h, w), 999), "999"), ([ids, ids], "one map"), (ids[: h // 2, : w // 2], "open a new one"),
                 ("no/such/file.png", "no/such/file.png")]
        for bad, words in cases:
            with pytest.raises(LabelError) as err:
                ed.update(bad)
            assert "\n" not in str(err.value) and words in str(err.value)
        res = ed.update(ids)  # the session is where it was: nothing changed
        assert res.incremental and res.changed == 0.0


def test_an_unconditional_model_has_no_editor(small_bundle):
    s = Synthesizer.from_pretrained(small_bundle("progan-64"), backend="onnxruntime", threads=1)
    with pytest.raises(AttributeError, match=r"has no attribute 'editor': editing a label map is label-to-image"):
        s.editor(np.zeros((64, 64), np.int32))  # an unconditional pipeline has no editor (issue 24's pipelines)


def test_a_preview_editor_redoes_less_of_the_main_path_and_stays_near_a_call(small_bundle):
    """``tol`` reaches the session: the update reports the main path's work it kept, and the
    image stays near the call's (measured 58.7 dB, as in tests/train/test_incremental.py;
    the unedited image: 54.3). The default editor redoes all of it."""
    from sdk.train.metrics.image_quality import psnr

    s = open_torch(small_bundle, "spade-ade20k")
    ids = base_map(s)
    new = brush_stroke(ids, 0.02, s.bundle.num_classes, seed=1)
    with s.editor(ids, seed=3) as exact, s.editor(ids, seed=3, tol=0.03) as preview:
        assert exact.update(new).main_recomputed == 1.0
        res = preview.update(new)
        assert res.incremental and 0 < res.main_recomputed < 1
        assert psnr(np.array(res.image)[None], np.array(s(new, seed=3))[None]) >= 57.0
    for bad in (-1.0, float("nan")):
        with pytest.raises(SDKError, match=r"^tol is .*; give a finite number >= 0 \(0: exact updates"):
            s.editor(ids, seed=3, tol=bad)
