"""Unconditional bundles (Progressive GAN) through onnxruntime: seeds, batches, interpolation,
and clear errors for label maps and image inputs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import LabelError, SDKError, Synthesizer


@pytest.fixture(scope="module")
def progan(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("progan-64"), backend="onnxruntime")


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def test_seeded_samples(progan):
    h, w = progan.bundle.resolution
    a, b = progan(seed=0, n=2)
    assert all(isinstance(i, Image.Image) and i.size == (w, h) and i.mode == "RGB" for i in (a, b))
    assert np.abs(_px(a) - _px(b)).mean() > 10  # different latents, different images (measured ~62)
    again = progan(seed=0, n=2)
    assert np.array_equal(_px(again[0]), _px(a)) and np.array_equal(_px(again[1]), _px(b))
    assert np.array_equal(_px(progan(seed=0)), _px(a))  # n draws continue the seed's stream
    assert not np.array_equal(_px(progan(seed=1)), _px(a))


def test_interpolate_without_label(progan):
    frames = progan.interpolate(seed_a=0, seed_b=1, steps=5)
    assert len(frames) == 5
    assert np.array_equal(_px(frames[0]), _px(progan(seed=0)))
    assert np.array_equal(_px(frames[-1]), _px(progan(seed=1)))
    # frames move away from the start monotonically-ish: the middle differs from both ends
    mid = _px(frames[2])
    assert np.abs(mid - _px(frames[0])).mean() > 1 and np.abs(mid - _px(frames[-1])).mean() > 1
    assert len(progan.variations(n=3, seed=0)) == 3
    with pytest.raises(SDKError, match="steps must be >= 2"):
        progan.interpolate(seed_a=0, seed_b=1, steps=1)


def test_label_or_instance_map_is_a_clear_error(progan):
    h, w = progan.bundle.resolution
    ids = np.zeros((h, w), np.int64)
    for kwargs in ({"label": ids}, {"instance": ids}):
        with pytest.raises(LabelError, match=r"unconditional model that takes no label map: call it as s\(seed=0"):
            progan(seed=0, **kwargs)
    with pytest.raises(LabelError, match="takes no label map"):
        progan.interpolate(ids, seed_a=0, seed_b=1, steps=2)
    with pytest.raises(AttributeError, match=r"'Unconditional' object has no attribute 'translate': translate is "
                       r"image-to-image models' \(ImageToImage: MSG U-Net\); .* call it as s\(seed=0"):
        progan.translate(np.zeros((h, w, 3), np.uint8))
