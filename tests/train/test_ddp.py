"""Two CPU processes under torchrun (gloo): DistributedDataParallel, rank-0 checkpoints."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_S
from tests.train.conftest import ROOT, tiny_config, write_config


def test_two_process_gloo(tmp_path: Path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(train={"max_steps": 2}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--standalone", "-m", "train", "--config", str(cfg), "--out",
                        str(tmp_path / "run"), "--no-progress"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "run/ckpt-00000002/meta.json").read_text())
    assert meta["world_size"] == 2
    # one metrics line per logged step, from rank 0 only
    steps = [json.loads(x)["step"] for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
