"""pix2pixHD bundles take a label map and an optional instance map, as SPADE does, and are
deterministic: no latent, so seeds change nothing and variations are refused."""
from __future__ import annotations

import numpy as np
import pytest

from sdk import LabelError, SDKError, Synthesizer
from tests.conftest import random_ids


@pytest.fixture(scope="module")
def p2p(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("pix2pixhd-cityscapes-1024"), backend="onnxruntime", label_format="ids")


def test_label_and_instance_map(p2p):
    h, w = p2p.bundle.resolution
    assert p2p.bundle.label["instance_edge"]
    label = random_ids((h, w), p2p.bundle.num_classes, 0)
    inst = np.zeros((h, w), np.int64)
    inst[:, w // 3:] = 1
    inst[h // 2:] += 2
    img = p2p(label, instance=inst)
    assert img.size == (w, h) and img.mode == "RGB"
    px = np.asarray(img, np.float64)
    assert np.array_equal(px, np.asarray(p2p(label, instance=inst), np.float64))  # deterministic
    assert np.array_equal(px, np.asarray(p2p(label, instance=inst, seed=7), np.float64))  # no latent
    # the instance edges reach the graph: class edges alone give another image (measured ~18)
    assert np.abs(px - np.asarray(p2p(label), np.float64)).mean() > 2
    batch = p2p([label, label], instance=[inst, inst])
    assert np.array_equal(np.asarray(batch[1], np.float64), px)


def test_deterministic_model_errors(p2p):
    h, w = p2p.bundle.resolution
    label = random_ids((h, w), p2p.bundle.num_classes, 0)
    with pytest.raises(SDKError, match="takes no latent"):
        p2p(label, z=np.zeros(8))
    with pytest.raises(SDKError, match="variations has nothing to vary"):
        p2p.variations(label, n=2)
    with pytest.raises(LabelError, match="instance map is 8x8 but the label map is"):
        p2p(label, instance=np.zeros((8, 8), np.int64))
