"""The runtime stays light: ``import sdk`` must not pull in torch."""
import subprocess
import sys

from tests.conftest import ROOT


def test_import_sdk_does_not_import_torch():
    code = "import sys, sdk; from sdk import Synthesizer; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_import_sdk_does_not_import_ray_or_gradio():
    """The scale and app extras are imported by their commands only."""
    code = ("import sys, sdk, sdk.cli; from sdk import Synthesizer; "
            "print(sorted(m for m in ('ray', 'gradio', 'fastapi', 'playwright') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
