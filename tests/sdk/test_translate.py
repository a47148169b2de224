"""Image-to-image bundles (MSG U-Net) through onnxruntime: ``translate`` on paths, PIL images
and arrays, every scale, batches, resizing rules and task errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import SDKError, Synthesizer


@pytest.fixture(scope="module")
def msg(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("msgunet-512"), backend="onnxruntime")


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (uint8, (H, W, 3))."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse, "RGB").resize((w, h), Image.BILINEAR))


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def test_translate_path_pil_array_agree(msg, tmp_path):
    h, w = msg.bundle.resolution
    arr = _photo(h, w)
    Image.fromarray(arr).save(tmp_path / "in.png")
    out = msg.translate(arr)
    assert isinstance(out, Image.Image) and out.size == (w, h) and out.mode == "RGB"
    for other in (Image.fromarray(arr), tmp_path / "in.png", str(tmp_path / "in.png")):
        assert np.array_equal(_px(msg.translate(other)), _px(out))
    # the output depends on the input (measured mean abs difference ~32 on random weights)
    assert np.abs(_px(msg.translate(_photo(h, w, seed=1))) - _px(out)).mean() > 1


def test_all_scales_and_batches(msg):
    h, w = msg.bundle.resolution
    outputs = [o for o in msg.bundle.graph("model").outputs if o.kind == "image"]
    assert len(outputs) > 1
    arr = _photo(h, w)
    scales = msg.translate(arr, all_scales=True)
    assert list(scales) == [o.name for o in outputs]  # full size first, every listed scale
    for o in outputs:
        assert scales[o.name].size == (o.shape[3], o.shape[2])
    top = next(iter(scales.values()))
    assert np.array_equal(_px(top), _px(msg.translate(arr)))
    batch = msg.translate([arr, _photo(h, w, seed=1)])
    assert isinstance(batch, list) and len(batch) == 2
    assert np.array_equal(_px(batch[0]), _px(top))
    batch_scales = msg.translate([arr], all_scales=True)
    assert isinstance(batch_scales, list) and list(batch_scales[0]) == list(scales)


def test_resize_same_aspect_error_other_aspect(msg):
    h, w = msg.bundle.resolution
    big = _photo(2 * h, 2 * w)
    out = msg.translate(big)
    assert out.size == (w, h)
    resized = np.asarray(Image.fromarray(big).resize((w, h), Image.BICUBIC))
    assert np.array_equal(_px(out), _px(msg.translate(resized)))  # bicubic to the bundle size
    with pytest.raises(SDKError, match=rf"image is {h}x{h} \(HxW\).*aspect ratios differ.*Crop or pad"):
        msg.translate(_photo(h, h))
    with pytest.raises(SDKError, match=r"image\[1\] is"):
        msg.translate([big, _photo(h, h)])
    with pytest.raises(SDKError, match=r"\(H, W, 3\) uint8"):
        msg.translate(np.zeros((h, w), np.uint8))
    with pytest.raises(SDKError, match="empty list"):
        msg.translate([])


def test_calling_with_a_label_points_to_translate(msg):
    h, w = msg.bundle.resolution
    # calling an ImageToImage is translate; a label map is refused as one
    with pytest.raises(SDKError, match=r"image2image model: it takes an RGB image \(\(H, W, 3\) uint8\), not a "
                                       r"label map"):
        msg(np.zeros((h, w), np.int64))
    with pytest.raises(AttributeError, match="'ImageToImage' object has no attribute 'interpolate'"):
        msg.interpolate(seed_a=0, seed_b=1)
