from pathlib import Path

import pytest

from sdk.train.trainer.config import ConfigError, config_from_dict, load_config
from tests.train.conftest import ROOT, tiny_config


def test_shipped_configs_validate():
    names = sorted(p.stem for p in (ROOT / "train" / "configs").glob("*.yaml"))
    for must in ("spade-cityscapes", "spade-ade20k", "groupdnet-deepfashion", "oasis-ade20k", "dpsims-ade20k",
                 "progan-celebahq-1024", "msgunet-cityscapes-2048", "pix2pixhd-cityscapes-2048", "demo-spade"):
        assert must in names
    for name in names:
        load_config(ROOT / "train" / "configs" / f"{name}.yaml")


def test_paper_ttur_spade():
    cfg = load_config(ROOT / "train/configs/spade-cityscapes.yaml")
    assert (cfg.optim.beta1, cfg.optim.beta2, cfg.optim.lr_G, cfg.optim.lr_D) == (0.0, 0.9, 1e-4, 4e-4)


@pytest.mark.parametrize("section,key,value,needle", [
    ("optim", "lr_g", 1e-4, "unknown key optim.lr_g"),
    ("train", "batch_size", "4", "train.batch_size: expected int"),
    ("optim", "lr_G", "fast", "optim.lr_G: expected float"),
    ("train", "amp", "fp8", "train.amp"),
    ("log", "tensorboard", 1, "log.tensorboard: expected bool"),
])
def test_bad_key_or_type_names_the_key(section, key, value, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        config_from_dict(tiny_config(**{section: {key: value}}))


def test_unknown_section_and_missing_model(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown key optimizer"):
        config_from_dict({**tiny_config(), "optimizer": {}})
    with pytest.raises(ConfigError, match="missing key model"):
        config_from_dict({"train": {}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_int_accepted_for_float():
    assert config_from_dict(tiny_config(optim={"lr_G": 1})).optim.lr_G == 1.0
