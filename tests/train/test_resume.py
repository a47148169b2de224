"""A run of N steps equals N/2 steps + --resume for N/2, bit for bit, on CPU."""
from pathlib import Path

import torch
from safetensors.torch import load_file

from sdk.train.trainer.config import config_from_dict
from sdk.train.trainer.loop import Trainer
from tests.train.conftest import tiny_config


def _run(out: Path, steps: int, resume: bool = False) -> None:
    cfg = config_from_dict(tiny_config(log={"checkpoint_every": 100}))
    Trainer(cfg, out, resume=resume, max_steps=steps, progress=False).run()


def test_exact_resume(tmp_path: Path):
    _run(tmp_path / "full", 4)
    _run(tmp_path / "half", 2)
    _run(tmp_path / "half", 4, resume=True)
    full, half = tmp_path / "full/ckpt-00000004", tmp_path / "half/ckpt-00000004"
    for name in ("generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors"):
        a, b = load_file(str(full / name)), load_file(str(half / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"
    sa, sb = torch.load(full / "state.pt", weights_only=True), torch.load(half / "state.pt", weights_only=True)
    assert sa["data"] == sb["data"] and torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
    # the 2-step run kept its checkpoint; keep_last=2 leaves at most two
    assert len(list((tmp_path / "half").glob("ckpt-*"))) == 2
