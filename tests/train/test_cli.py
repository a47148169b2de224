"""``python -m train``: 3 steps of the demo config, a checkpoint, then --resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_S
from tests.train.conftest import ROOT, tiny_config, write_config


def _train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "train", *args, "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=HANG_S)


def test_demo_config_three_steps_then_resume(tmp_path: Path):
    run = tmp_path / "run"
    r = _train("--config", "train/configs/demo-spade.yaml", "--max-steps", "3", "--out", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = run / "ckpt-00000003"
    assert (ckpt / "generator.safetensors").is_file() and (ckpt / "state.pt").is_file()
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["preset"] == "spade-demo-street" and meta["step"] == 3
    r = _train("--config", "train/configs/demo-spade.yaml", "--max-steps", "4", "--out", str(run), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout and (run / "ckpt-00000004").is_dir()
    assert len([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]) >= 1


def test_config_error_is_clear(tmp_path: Path):
    cfg = tiny_config(optim={"lr_gen": 1.0})
    r = _train("--config", str(write_config(tmp_path / "bad.yaml", cfg)), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "unknown key optim.lr_gen" in r.stderr


def test_resume_without_checkpoint(tmp_path: Path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config())
    r = _train("--config", str(cfg), "--out", str(tmp_path / "empty"), "--resume")
    assert r.returncode == 2 and "no checkpoint" in r.stderr


def test_ctrl_c_writes_checkpoint_and_stops(tmp_path: Path):
    import signal
    import time

    cfg = write_config(tmp_path / "c.yaml", tiny_config(train={"max_steps": 100000},
                                                        log={"checkpoint_every": 100000}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "train", "--config", str(cfg), "--out", str(run),
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + HANG_S
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, err[-2000:]
    assert "Ctrl-C" in out and "stopped at step" in out
    assert list(run.glob("ckpt-*/generator.safetensors"))
