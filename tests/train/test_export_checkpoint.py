"""A training checkpoint exports to a bundle; a config mismatch says which overrides to use."""
import json
from pathlib import Path

import pytest

from sdk.export.bundle import build_bundle, load_checkpoints
from sdk.train.models import create_model
from sdk.train.models.official import CheckpointMismatch
from sdk.train.trainer.config import config_from_dict
from sdk.train.trainer.loop import Trainer
from tests.train.conftest import tiny_config


def test_export_training_checkpoint(tmp_path: Path):
    cfg = config_from_dict(tiny_config(train={"max_steps": 1}))
    ckpt = Trainer(cfg, tmp_path / "run", progress=False).run()
    weights = ckpt / "generator.safetensors"
    meta = json.loads((ckpt / "meta.json").read_text())
    with pytest.raises(CheckpointMismatch, match="overrides"):
        load_checkpoints(create_model("spade-demo-street"), [weights])
    manifest = build_bundle("spade-demo-street", tmp_path / "bundle", checkpoints=[weights],
                            overrides=meta["overrides"])
    assert manifest.resolution == [256, 512] and manifest.weights["norm_stats"] == "learned"
    from sdk.bundle import Bundle

    Bundle(tmp_path / "bundle")  # verifies checksums
