"""One training step of each family's recipe at CI size (SPADE is covered by the other tests)."""
from pathlib import Path

import pytest

from train.models import get_preset
from train.trainer.config import config_from_dict
from train.trainer.loop import Trainer
from train.trainer.recipes.progan import lod_at

CASES = {
    "progan-64": (None, {}, {"images_per_phase": 2}),
    "pix2pixhd-cityscapes-1024": (None, {}, {}),
    "msgunet-512": (None, {}, {}),
    "oasis-ade20k": ({"channels_G": 2, "spade_hidden": 8, "height": 64, "width": 64, "num_res_blocks": 1},
                     {"width": 8, "depth": 3}, {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_step(name: str, tmp_path: Path):
    overrides, disc, progressive = CASES[name]
    overrides = overrides if overrides is not None else dict(get_preset(name).test_overrides)
    cfg = config_from_dict({
        "model": {"name": name, "overrides": overrides, "D": disc},
        "data": {"kind": "procedural", "num_samples": 4},
        "train": {"batch_size": 2, "max_steps": 1, "ema_decay": 0.9, "progressive": progressive},
        "log": {"tensorboard": False, "image_every": 1}})
    ckpt = Trainer(cfg, tmp_path, progress=False).run()
    assert (ckpt / "generator_ema.safetensors").is_file()


def test_progressive_schedule_fades_in_each_level():
    # 4x4 stable, then per level a fade-in (lod falls by 1 linearly) and a stable phase
    assert lod_at(0, 4, 100) == 4.0
    assert lod_at(150, 4, 100) == pytest.approx(3.5)
    assert lod_at(250, 4, 100) == 3.0
    assert lod_at(350, 4, 100) == pytest.approx(2.5)
    assert lod_at(10_000, 4, 100) == 0.0
