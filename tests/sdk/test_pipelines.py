"""One pipeline class per task: ``Synthesizer.from_pretrained`` (and ``Synthesizer(Bundle)``)
return the class for the bundle's task and latent kind; each class has only the calls that
work on it (``hasattr``, ``dir``, ``help``), and a call another class has is an
AttributeError naming who has it and why this bundle has not, in one line.

The matrix is generated: every preset below x every call in :data:`sdk.synthesizer.CALLS`.
"""
from __future__ import annotations

import pydoc

import numpy as np
import pytest

from sdk import (
    Bundle,
    ImageToImage,
    LabelToImage,
    PerClassLabelToImage,
    SDKError,
    Synthesizer,
    Unconditional,
)
from sdk.cli import main
from sdk.synthesizer import CALLS

SAMPLING = {"stream", "variations", "interpolate"}
LABEL_TO_IMAGE = SAMPLING | {"synthesize_many", "encode_style", "read_label", "editor"}
PER_CLASS = (LABEL_TO_IMAGE - {"encode_style"}) | {"sample_codes", "codes_shape", "resample", "resample_codes",
                                                  "interpolate_classes", "mix", "morph", "encode"}
PIPELINES = {  # preset -> (class, the calls of CALLS it has)
    "spade-cityscapes": (LabelToImage, LABEL_TO_IMAGE),
    "dpsims-ade20k": (LabelToImage, LABEL_TO_IMAGE),
    "groupdnet-deepfashion": (PerClassLabelToImage, PER_CLASS),
    "oasis-ade20k": (PerClassLabelToImage, PER_CLASS),
    "progan-64": (Unconditional, SAMPLING),
    "msgunet-512": (ImageToImage, {"translate"}),
}
OWNER = {"translate": "(ImageToImage", "synthesize_many": "(LabelToImage)", "encode_style": "LabelToImage",
         "read_label": "(LabelToImage", "editor": "(LabelToImage, PerClassLabelToImage)", **dict.fromkeys(SAMPLING, "(LabelToImage, Unconditional)")}


@pytest.fixture(scope="module", params=list(PIPELINES))
def opened(request, small_bundle):
    s = Synthesizer.from_pretrained(small_bundle(request.param), backend="onnxruntime")
    yield request.param, s
    s.close()


def test_from_pretrained_and_the_constructor_return_the_bundles_pipeline(opened):
    name, s = opened
    cls, _ = PIPELINES[name]
    assert type(s) is cls and isinstance(s, Synthesizer) and repr(s).startswith(f"{cls.__name__}({name!r}")
    again = Synthesizer(Bundle(s.bundle.path), backend="onnxruntime")  # existing code constructs it
    assert type(again) is cls
    assert type(cls.from_pretrained(s.bundle.path, backend="onnxruntime")) is cls
    assert s.has_codes == (cls is PerClassLabelToImage)


def test_each_pipeline_has_only_its_calls(opened):
    name, s = opened
    cls, calls = PIPELINES[name]
    assert {c for c in CALLS if hasattr(s, c)} == calls
    assert {c for c in CALLS if c in dir(s)} == calls and {c for c in CALLS if c in dir(cls)} == calls
    doc = pydoc.render_doc(s, renderer=pydoc.plaintext)
    assert all(f"{c}(" not in doc for c in set(CALLS) - calls - {"interpolate"})  # interpolate_classes names it
    assert callable(s)


def test_a_call_of_another_pipeline_names_who_has_it(opened):
    name, s = opened
    cls, calls = PIPELINES[name]
    for call in sorted(set(CALLS) - calls):
        with pytest.raises(AttributeError) as err:
            getattr(s, call)
        message = str(err.value)
        assert message.startswith(f"'{cls.__name__}' object has no attribute '{call}': ") and "\n" not in message
        assert name in message, message  # which bundle, and why it has not
        assert OWNER.get(call, "(PerClassLabelToImage)") in message, message
        assert isinstance(err.value, SDKError)  # the CLI prints it as its one line
    with pytest.raises(AttributeError, match="object has no attribute 'nonsense'$"):
        s.nonsense  # a name no pipeline has: Python's own message


def test_per_class_and_task_reasons(small_bundle):
    spade = Synthesizer.from_pretrained(small_bundle("spade-cityscapes"), backend="onnxruntime")
    with pytest.raises(AttributeError, match=r"^'LabelToImage' object has no attribute 'mix': per-class codes are "
                       r"GroupDNet's and OASIS' \(PerClassLabelToImage\); spade-cityscapes has no per-class codes"):
        spade.mix
    progan = Synthesizer.from_pretrained(small_bundle("progan-64"), backend="onnxruntime")
    with pytest.raises(AttributeError, match=r"'synthesize_many': it is label-to-image models' \(LabelToImage\); "
                       r"progan-64 is an unconditional model: call it as s\(seed=0, n=4\)"):
        progan.synthesize_many


def test_a_pipeline_class_refuses_another_tasks_bundle(small_bundle):
    for cls, preset in ((LabelToImage, "progan-64"), (Unconditional, "spade-cityscapes"),
                        (PerClassLabelToImage, "spade-cityscapes"), (LabelToImage, "oasis-ade20k")):
        with pytest.raises(SDKError, match=r"open it with Synthesizer.from_pretrained, which gives its pipeline, \w+$"):
            cls.from_pretrained(small_bundle(preset), backend="onnxruntime")


def test_image_to_image_call_is_translate(small_bundle):
    msg = Synthesizer.from_pretrained(small_bundle("msgunet-512"), backend="onnxruntime")
    h, w = msg.bundle.resolution
    photo = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(msg(photo)), np.asarray(msg.translate(photo)))


def test_cli_on_a_call_the_bundle_has_not_is_one_line(small_bundle, tmp_path, capsys):
    label = tmp_path / "l.png"
    from PIL import Image

    b = Bundle(small_bundle("spade-cityscapes"))
    Image.fromarray(np.zeros(b.resolution, np.uint8), "L").save(label)
    args = ["morph", "--bundle", str(b.path), "--image-a", str(label), "--label-a", str(label), "--image-b",
            str(label), "--label-b", str(label), "--backend", "onnxruntime", "--out", str(tmp_path / "o.gif")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'LabelToImage' object has no attribute 'morph'" in err
