"""The wheel installs one top-level name, ``sdk`` (train/, export/ and benchmarks/ become
sdk.train, sdk.export, sdk.benchmarks), with every subpackage and data file, and the
checkout's ``python -m export`` / ``python -m train`` still run."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import tomllib

from tests.conftest import HANG_S, ROOT

MAPPED = {"sdk": "sdk", "train": "sdk.train", "export": "sdk.export", "benchmarks": "sdk.benchmarks"}


def test_every_subpackage_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {MAPPED[p.parts[0]] + "".join(f".{x}" for x in p.parts[1:])
               for top in MAPPED for p in (d.parent.relative_to(ROOT) for d in (ROOT / top).rglob("__init__.py"))}
    assert set(config["packages"]) == on_disk
    assert config["package-dir"] == {v: k for k, v in MAPPED.items()}


def test_wheel_has_one_top_level_name(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("sdk-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"sdk"}
    for needed in ("sdk/train/families/spade/network.py", "sdk/export/bundle.py", "sdk/benchmarks/latency.py",
                   "sdk/train/configs/demo-spade.yaml", "sdk/benchmarks/paper_claims.json"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[sdk.backends]" in text and "torch = sdk.train.deploy.runner:TorchRunner" in text


def test_checkout_commands_still_run():
    for module in ("export", "train"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, capture_output=True,
                              text=True, timeout=HANG_S)
        assert proc.returncode == 0 and proc.stdout.startswith("sdk "), (module, proc.stderr)
