"""A tiny bundle (progan-64 at its CI size: 16x16, ~13k parameters) copied per test."""
from __future__ import annotations

import shutil

import pytest

NAME = "progan-64"


@pytest.fixture()
def tiny_bundle(small_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(small_bundle(NAME), dst)
    return dst
