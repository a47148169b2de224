"""One training step of every family's recipe at CI size."""
from pathlib import Path

import pytest

from sdk.train.families import family_names
from sdk.train.families.progan.recipe import lod_at
from sdk.train.models import get_preset
from sdk.train.trainer.config import config_from_dict
from sdk.train.trainer.loop import Trainer

TINY_DPSIMS_D = {"depths": [1, 1, 1, 1], "dims": [8, 8, 16, 16], "d_width": 8}
CASES = {  # one preset per recipe, shrunk to train a step in seconds: (overrides, D options, progressive)
    "spade": ("spade-demo-street", {"ngf": 4, "spade_hidden": 8}, {"ndf": 8, "n_layers": 2, "num_D": 1}, {}),
    "groupdnet": ("groupdnet-deepfashion", {"ngf": 8, "encoder_ndf": 8, "height": 128, "width": 128},
                  {"ndf": 8, "n_layers": 2, "num_D": 1}, {}),
    "oasis": ("oasis-ade20k", {"channels_G": 2, "spade_hidden": 8, "height": 64, "width": 64, "num_res_blocks": 1},
              {"width": 8, "depth": 3}, {}),
    "dpsims": ("dpsims-ade20k", {"channels_G": 2, "spade_hidden": 8, "pyramid_dim": 8, "w_dim": 8, "mlp_hidden": 8,
                                 "n_tokens": 2, "height": 64, "width": 64}, TINY_DPSIMS_D, {}),
    "progan": ("progan-64", None, {}, {"images_per_phase": 2}),
    "pix2pixhd": ("pix2pixhd-cityscapes-1024", None, {}, {}),
    "msgunet": ("msgunet-512", None, {}, {}),
}


def test_every_family_is_covered():
    assert set(CASES) == set(family_names())


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_one_step(recipe: str, tmp_path: Path):
    """One step of every recipe: finite losses, every trainable part of G and D moved,
    and the checkpoint holds exactly the trained weights."""
    import json

    import torch

    from sdk.train.models.official import read_state_dict

    name, overrides, disc, progressive = CASES[recipe]
    overrides = overrides if overrides is not None else dict(get_preset(name).test_overrides)
    cfg = config_from_dict({
        "model": {"name": name, "overrides": overrides, "D": disc},
        "data": {"kind": "procedural", "num_samples": 4},
        "train": {"batch_size": 2, "max_steps": 1, "ema_decay": 0.9, "progressive": progressive},
        "loss": {"lambda_vgg": 0.0},
        "log": {"tensorboard": False, "image_every": 1, "every": 1}})
    trainer = Trainer(cfg, tmp_path, progress=False)
    gen = {k: v.clone() for k, v in trainer.recipe.gen.state_dict().items()}
    disc_before = {k: v.clone() for k, v in trainer.recipe.disc.state_dict().items()}
    ckpt = trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    row = rows[-1]
    losses = {k: v for k, v in row.items() if k.startswith(("G_", "D_", "loss"))}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), row
    # the evaluation (log.metrics, default PSNR and SSIM of the EMA images) ran and logged numbers
    evals = {k: v for r in rows for k, v in r.items() if k.startswith("eval/")}
    assert set(evals) == {"eval/psnr", "eval/ssim"} and all(torch.isfinite(torch.tensor(v)) for v in evals.values())
    for before, module in ((gen, trainer.recipe.gen), (disc_before, trainer.recipe.disc)):
        trainable = {k for k, p in module.named_parameters() if p.requires_grad}
        moved = {k for k, v in module.state_dict().items() if k in trainable and not torch.equal(v, before[k])}
        assert trainable and moved, (recipe, sorted(trainable - moved)[:5])
    saved = read_state_dict(ckpt / "generator.safetensors")
    own = trainer.model.state_dict()
    assert set(saved) == set(own) and all(torch.equal(saved[k], own[k]) for k in own)


def test_progressive_schedule_fades_in_each_level():
    # 4x4 stable, then per level a fade-in (lod falls by 1 linearly) and a stable phase
    assert lod_at(0, 4, 100) == 4.0
    assert lod_at(150, 4, 100) == pytest.approx(3.5)
    assert lod_at(250, 4, 100) == 3.0
    assert lod_at(350, 4, 100) == pytest.approx(2.5)
    assert lod_at(10_000, 4, 100) == 0.0
