"""The README's Python blocks run verbatim, against CI-size bundles of the presets they
name (``bundles/NAME`` -> the exported test bundle) and the repository's sample inputs."""
from __future__ import annotations

import os
import re
import runpy

import pytest

from tests.conftest import ROOT

SKIP = "<!-- readme-test: skip"


def python_blocks() -> list[tuple[int, str, bool]]:
    """(line, code, skipped) of every ```python block; a block right after a
    ``<!-- readme-test: skip (why) -->`` line is marked skipped."""
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            indent = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            body = []
            while lines[i].strip() != "```":
                body.append(lines[i][indent:])
                i += 1
            skipped = start > 0 and lines[start - 1].strip().startswith(SKIP)
            blocks.append((start + 1, "\n".join(body) + "\n", skipped))
        i += 1
    return blocks


BLOCKS = python_blocks()


def test_every_block_runs_or_says_why_not():
    assert len(BLOCKS) >= 3
    assert sum(skipped for *_, skipped in BLOCKS) <= 2  # the GPU one, and the Ray one test_batch.py covers


@pytest.mark.parametrize("line, code, skipped", BLOCKS, ids=[f"README.md:{b[0]}" for b in BLOCKS])
def test_readme_block_runs(line, code, skipped, small_bundle, tmp_path, monkeypatch):
    if skipped:
        pytest.skip("marked in the README (a CUDA GPU, or Ray covered by tests/sdk/test_batch.py)")
    for name in sorted(set(re.findall(r'"bundles/([a-z0-9-]+)"', code))):
        (tmp_path / "bundles").mkdir(exist_ok=True)
        os.symlink(small_bundle(name), tmp_path / "bundles" / name)
    for folder in ("samples", "demo"):
        os.symlink(ROOT / folder, tmp_path / folder)
    script = tmp_path / "block.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
