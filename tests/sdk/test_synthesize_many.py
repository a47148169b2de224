"""Synthesizer.synthesize_many: per-image seeds (and codes) in one runner call equal the
single calls, for latent (SPADE-VAE) and per-class-code (GroupDNet, OASIS) models."""
from __future__ import annotations

import numpy as np
import pytest

from sdk import SDKError, Synthesizer
from tests.conftest import random_ids


@pytest.mark.parametrize("name", ["spade-cityscapes-vae", "groupdnet-deepfashion", "oasis-ade20k"])
def test_each_image_is_its_single_call(small_bundle, name):
    s = Synthesizer.from_pretrained(small_bundle(name), label_format="ids")  # random model ids
    h, w = s.bundle.resolution
    labels = [random_ids((h, w), s.bundle.num_classes, seed=i) for i in range(3)]
    seeds = [5, 9, 5]
    many = s.synthesize_many(labels, seeds)
    for label, seed, img in zip(labels, seeds, many):
        assert np.abs(np.asarray(img, np.int16) - np.asarray(s(label, seed=seed), np.int16)).max() <= 1
    # Different seeds on one label really differ (the latent is per image, not per call).
    a, b = s.synthesize_many([labels[0], labels[0]], [1, 2])
    assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean() > 0.5


def test_mismatched_lengths_are_one_line(small_bundle):
    s = Synthesizer.from_pretrained(small_bundle("spade-cityscapes-vae"))
    h, w = s.bundle.resolution
    with pytest.raises(SDKError, match="one seed .* per label map: got 2 label maps, 1 seeds"):
        s.synthesize_many([np.zeros((h, w), int)] * 2, [0])
    assert s.synthesize_many([], []) == []
