"""Every CLI subcommand with a table of bad arguments: exit status 2, one line on stderr
naming the problem, no traceback. Run in-process (fast); the few cases that need a fresh
interpreter (no torch installed) run as subprocesses."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import HANG_S, ROOT


@pytest.fixture(scope="module")
def paths(small_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_args")
    spade, progan = small_bundle("spade-cityscapes"), small_bundle("progan-64")
    from sdk import Bundle

    h, w = Bundle(spade).resolution
    Image.fromarray(np.zeros((h, w), np.uint8), "L").save(tmp / "label.png")
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp / "photo.png")
    Image.fromarray(np.zeros((h, w), np.uint8), "L").save(tmp / "label.jpg", format="JPEG")
    (tmp / "labels").mkdir()
    Image.fromarray(np.zeros((h, w), np.uint8), "L").save(tmp / "labels" / "a.png")
    (tmp / "regular").write_text("a file, not a folder")
    readonly = tmp / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:  # root writes anyway: take a folder nobody can create files in
        (readonly / "probe").write_text("")
        (readonly / "probe").unlink()
        readonly = Path("/proc")
    except OSError:
        pass
    from sdk.benchmarks.door_memory import huge_png

    huge_png(tmp / "huge.png", 8192, 16384)
    (tmp / "vgg.yaml").write_text(textwrap.dedent("""\
        model: {name: spade-demo-street}
        data: {kind: procedural, num_samples: 4}
        loss: {lambda_vgg: 10.0, vgg_weights: weights/nope_vgg19.pth}
        """))
    return {"spade": str(spade), "progan": str(progan), "msgunet": str(small_bundle("msgunet-512")),
            "label": str(tmp / "label.png"), "photo": str(tmp / "photo.png"), "tmp": str(tmp),
            "nope": str(tmp / "nope"), "vgg": str(tmp / "vgg.yaml"), "jpeg": str(tmp / "label.jpg"),
            "regular": str(tmp / "regular"), "readonly": str(readonly), "huge": str(tmp / "huge.png"),
            "labels": str(tmp / "labels")}


SYN = ["synthesize", "--bundle", "{spade}", "--label", "{label}"]
RES = ["resample", "--bundle", "{spade}", "--label", "{label}", "--classes", "1", "--seed", "5"]
CASES = [
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--seed", "-1"], "seed must be a non-negative integer"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--seed", "x"], "argument --seed: invalid int value"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--n", "0"], "--n must be a whole number >= 1"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--n", "3"], "deterministic given its label map"),
    ("sdk", [*SYN, "--out", "{tmp}"], "is a folder"),
    ("sdk", [*SYN, "--out", "{regular}/o.png"], "which is a file, not a folder"),
    ("sdk", [*SYN, "--out", "{readonly}/o.png"], "cannot write in"),
    ("sdk", ["synthesize", "--bundle", "{spade}", "--label", "{tmp}", "--out", "{tmp}/o.png"],
     "is a folder, not an image file"),
    ("sdk", ["synthesize", "--bundle", "{spade}", "--label", "{jpeg}", "--out", "{tmp}/o.png"], "JPEG file: lossy"),
    ("sdk", ["synthesize", "--bundle", "{spade}", "--label", "{huge}", "--out", "{tmp}/o.png"],
     "label is 8192x16384 (HxW), 134,217,728 pixels; maps up to 33,554,432 pixels"),
    ("sdk", ["synthesize", "--bundle", "{spade}", "--label", "{label}", "--instance", "{jpeg}", "--out",
             "{tmp}/o.png"], "instance map is a JPEG file"),
    ("sdk", ["batch", "--bundle", "{spade}", "--input", "{labels}", "--out", "{regular}/out"],
     "which is a file, not a folder"),
    ("sdk", ["batch", "--bundle", "{spade}", "--input", "{labels}", "--out", "{readonly}/out"], "cannot write in"),
    ("sdk", ["batch", "--bundle", "{spade}", "--input", "{labels}", "--out", "{tmp}/o", "--instances", "x"],
     "no such folder, and no {stem} or {prefix} in it"),
    ("sdk", ["batch", "--bundle", "{spade}", "--input", "{labels}", "--labels", "nope", "--out", "{tmp}/o"],
     "--labels takes dataset or model (its new name: --label-format dataset|ids)"),
    ("sdk", ["batch", "--bundle", "{spade}", "--input", "{labels}", "--label-format", "model", "--out", "{tmp}/o"],
     "argument --label-format: invalid choice: 'model'"),
    ("sdk", ["app", "--bundle", "{spade}", "--label", "{huge}"], "maps up to 33,554,432 pixels"),
    ("sdk", [*SYN, "--out", "{tmp}/o.txt"], "give an image file name"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--format", "uint8"], "writes a .npy array"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--backend", "nope"], "unknown backend 'nope'"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--threads", "0"], "threads must be a whole number >= 1"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--device", "cuda"], "no CUDAExecutionProvider"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--device", "tpu"], "use 'cpu', 'cuda' or 'cuda:N'"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--precision", "fp16"], "takes no option 'precision'"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--batch-size", "0"], "batch_size must be a whole number >= 1"),
    ("sdk", [*SYN, "--out", "{tmp}/o.png", "--style", "{photo}"], "takes no latent"),
    ("sdk", ["synthesize", "--bundle", "{nope}", "--label", "{label}", "--out", "{tmp}/o.png"], "does not exist"),
    ("sdk", ["synthesize", "--bundle", "{spade}", "--label", "{nope}", "--out", "{tmp}/o.png"], "does not exist"),
    ("sdk", ["synthesize", "--bundle", "{progan}", "--label", "{label}", "--out", "{tmp}/o.png"],
     "(CLI: `python -m sdk sample --seed S`)"),
    ("sdk", ["sample", "--bundle", "{progan}", "--seed", "-5", "--out", "{tmp}/o.png"], "seed must be"),
    ("sdk", ["sample", "--bundle", "{progan}", "--interpolate", "1", "--steps", "1", "--out", "{tmp}/o.gif"],
     "steps must be >= 2"),
    ("sdk", ["sample", "--bundle", "{progan}", "--interpolate", "-1", "--out", "{tmp}/o.gif"], "seed_b must be"),
    ("sdk", ["translate", "--bundle", "{msgunet}", "--image", "{nope}", "--out", "{tmp}/o.png"], "does not exist"),
    ("sdk", ["morph", "--bundle", "{spade}", "--image-a", "{photo}", "--label-a", "{label}", "--image-b", "{photo}",
             "--label-b", "{label}", "--out", "{tmp}/o.png"], "animated GIF"),
    ("sdk", ["morph", "--bundle", "{spade}", "--image-a", "{photo}", "--label-a", "{label}", "--image-b", "{photo}",
             "--label-b", "{label}", "--out", "{tmp}/o.gif"], "has no per-class codes"),
    ("sdk", [*RES, "--out", "{tmp}/o.png"], "has no per-class codes; resample/mix/morph need a GroupDNet or OASIS"),
    ("sdk", [*RES[:5], "--classes", ",", "--seed", "5", "--out", "{tmp}/o.png"], "--classes is empty"),
    ("sdk", [*RES[:7], "--out", "{tmp}/o.png"], "the following arguments are required: --seed"),
    ("sdk", [*RES, "--out", "{tmp}/o.txt"], "give an image file name"),
    ("sdk", [*RES, "--out", "{tmp}/o.gif", "--save-codes", "{tmp}/c.npy"], "go with a single image"),
    ("sdk", [*RES, "--out", "{tmp}/o.png", "--save-codes", "{tmp}/c.txt"], "--save-codes writes a .npy array"),
    ("sdk", [*RES, "--out", "{tmp}/o.png", "--base-codes", "{nope}"], "does not exist"),
    ("sdk", ["info", "--bundle", "{nope}"], "does not exist"),
    ("sdk", ["info"], "give the bundle folder"),
    ("sdk", ["bogus"], "invalid choice"),
    ("export", ["bundle", "--model", "nope"], "unknown model 'nope'"),
    ("export", ["bundle", "--model", "progan-64", "--seed", "x"], "invalid int value"),
    ("export", ["bundle", "--model", "progan-64", "--checkpoint", "{nope}"], "does not exist"),
    ("export", ["engine", "--bundle", "{nope}", "--backend", "aoti"], "does not exist"),
    ("export", ["engine", "--bundle", "{progan}", "--backend", "aoti", "--batch", "8:4:1"], "batch profile"),
    ("export", ["engine", "--bundle", "{progan}", "--backend", "aoti", "--precision", "fp16"], "needs a GPU"),
    ("export", ["engine", "--bundle", "{progan}", "--backend", "nope"], "invalid choice"),
    ("train", ["--config", "{nope}"], "not found"),
    ("train", ["--config", "{vgg}"], "loss.vgg_weights: weights/nope_vgg19.pth does not exist; it is torchvision's"),
    ("train", ["--config", "{vgg}", "--max-steps", "x"], "invalid int value"),
]


def _main(cli: str):
    if cli == "sdk":  # python -m sdk: the runtime's commands and the doors
        from sdk.services.cli import main
    elif cli == "export":
        from sdk.export.cli import main
    else:
        from sdk.train.cli import main
    return main


@pytest.mark.parametrize("cli, args, message", CASES, ids=[f"{c[0]}-{'-'.join(c[1][:1])}-{i}" for i, c in enumerate(CASES)])
def test_bad_arguments_exit_2_with_one_line(cli, args, message, paths, capsys):
    argv = [a.format(**paths) for a in args]
    try:
        code = _main(cli)(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err, err
    lines = [line for line in err.splitlines() if not line.startswith("sdk: ") or "random weights" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)


NO_TORCH = "import sys; sys.modules['torch'] = None; sys.argv[0] = 'x'; "


@pytest.mark.parametrize("what, code", [
    ("export list", NO_TORCH + "from sdk.export.cli import main; sys.exit(main(['list']))"),
    ("train", NO_TORCH + "from sdk.train.cli import main; sys.exit(main(['--config', 'x.yaml']))"),
    ("latency", NO_TORCH + "sys.path.insert(0, 'benchmarks'); import runpy; "
                           "sys.argv = ['latency.py', '--quick']; runpy.run_path('benchmarks/latency.py', "
                           "run_name='__main__')"),
    ("sdk --backend torch", NO_TORCH + "from sdk.cli import main; sys.exit(main(['sample', '--bundle', "
                                       "'demo/spade-street', '--backend', 'torch', '--out', '/tmp/x.png']))"),
])
def test_commands_that_need_torch_say_how_to_install_it(what, code):
    r = _python(code)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "torch" in err and ("pip install" in err), err


def test_help_and_version_need_no_torch():
    for cli, command in (("sdk.export.cli", "'bundle', "), ("sdk.cli", "'synthesize', "), ("sdk.train.cli", "")):
        r = _python(NO_TORCH + f"from {cli} import main; main([{command}'--help'])")
        assert r.returncode == 0 and "usage:" in r.stdout and "(default:" in r.stdout, (cli, r.stderr)
        r = _python(NO_TORCH + f"from {cli} import main; main(['--version'])")
        assert r.returncode == 0 and r.stdout.startswith("sdk "), (cli, r.stderr)
