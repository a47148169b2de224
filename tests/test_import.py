"""The runtime stays light: ``import sdk`` must not pull in torch."""
import subprocess
import sys

from tests.conftest import ROOT


def test_import_sdk_does_not_import_torch():
    code = "import sys, sdk; from sdk import Synthesizer; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
