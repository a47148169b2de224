"""Synthesizer behaviour on a small SPADE-VAE bundle: seeds, z, style, batches, errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import LabelError, SDKError, Synthesizer
from tests.conftest import random_ids


@pytest.fixture(scope="module")
def vae(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("spade-cityscapes-vae"), label_format="ids")


@pytest.fixture(scope="module")
def plain(small_bundle):
    return Synthesizer.from_pretrained(small_bundle("spade-cityscapes"), label_format="ids")


def _label(s, seed=0):
    return random_ids(s.bundle.resolution, s.bundle.num_classes, seed)


def test_n_batch_and_list_returns(vae):
    label = _label(vae)
    imgs = vae(label, seed=1, n=3)
    assert isinstance(imgs, list) and len(imgs) == 3
    assert all(isinstance(i, Image.Image) and i.size == vae.bundle.resolution[::-1] for i in imgs)
    assert len({np.asarray(i).tobytes() for i in imgs}) == 3  # different latents
    single = vae(label, seed=1)
    assert np.array_equal(np.asarray(single), np.asarray(imgs[0]))  # n draws continue the seed's stream
    batch = vae([label, _label(vae, 1)], seed=1)
    assert isinstance(batch, list) and len(batch) == 2
    assert np.array_equal(np.asarray(batch[0]), np.asarray(imgs[0]))


def test_explicit_z_and_style(vae, tmp_path):
    label = _label(vae)
    z = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    a, b = vae(label, z=z), vae(label, z=z[None])
    assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(SDKError, match=r"z must have shape \(256,\)"):
        vae(label, z=np.zeros(10))
    style = Image.fromarray((np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8))
    code = vae.encode_style(style)
    assert code.shape == (256,)
    np.testing.assert_array_equal(np.asarray(vae(label, style=style)), np.asarray(vae(label, z=code)))


def test_variations_and_interpolate(vae):
    label = _label(vae)
    frames = vae.interpolate(label, seed_a=0, seed_b=1, steps=4)
    assert len(frames) == 4
    assert np.array_equal(np.asarray(frames[0]), np.asarray(vae(label, seed=0)))
    assert np.array_equal(np.asarray(frames[-1]), np.asarray(vae(label, seed=1)))
    assert len(vae.variations(label, n=3, seed=0)) == 3


def test_instance_map_errors_and_edges(vae, plain):
    h, w = vae.bundle.resolution
    label = _label(vae)
    inst = np.zeros((h, w), np.int64)
    inst[:, w // 2:] = 1
    with_inst = np.asarray(vae(label, seed=0, instance=inst))
    assert not np.array_equal(with_inst, np.asarray(vae(label, seed=0)))  # edges reach the graph
    with pytest.raises(LabelError, match="instance map is 10x10 but the label map is"):
        vae(label, seed=0, instance=np.zeros((10, 10), np.int64))


def test_label_errors(plain):
    h, w = plain.bundle.resolution
    bad = np.zeros((h, w), np.int64)
    bad[3, 5] = 35
    with pytest.raises(LabelError, match=r"label contains id 35 at \(3, 5\); this model takes ids 0..34"):
        plain(bad)
    with pytest.raises(LabelError, match=f"this model takes {h}x{w}"):  # another aspect ratio
        plain(np.zeros((2 * h, w), np.int64))
    with pytest.raises(LabelError, match="needs a label map"):
        plain()
    with pytest.raises(SDKError, match="takes no latent"):
        plain(np.zeros((h, w), np.int64), z=np.zeros(256))
    with pytest.raises(SDKError, match="no style encoder"):
        plain.encode_style(np.zeros((8, 8, 3), np.uint8))
