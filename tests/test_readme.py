"""The Python blocks of the README and of every page under docs/ run verbatim, against
CI-size bundles of the presets they name (``bundles/NAME`` -> the exported test bundle)
and the repository's sample inputs."""
from __future__ import annotations

import os
import re
import runpy
from pathlib import Path

import pytest

from tests.conftest import ROOT

SKIP = "<!-- readme-test: skip"


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(page: Path) -> list[tuple[str, str, bool]]:
    """(where, code, skipped) of every ```python block of ``page``; a block right after a
    ``<!-- readme-test: skip (why) -->`` line is marked skipped."""
    lines = page.read_text().splitlines()
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
            blocks.append((f"{page.relative_to(ROOT)}:{start + 1}", "\n".join(body) + "\n", skipped))
        i += 1
    return blocks


BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def test_every_block_runs_or_says_why_not():
    assert len(BLOCKS) >= 3
    assert sum(skipped for *_, skipped in BLOCKS) <= 2  # the GPU one, and the Ray one test_batch.py covers


@pytest.mark.parametrize("where, code, skipped", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_readme_block_runs(where, code, skipped, small_bundle, tmp_path, monkeypatch):
    if skipped:
        pytest.skip("marked in the page (a CUDA GPU, or Ray covered by tests/sdk/test_batch.py)")
    for name in sorted(set(re.findall(r'"bundles/([a-z0-9-]+)"', code))):
        (tmp_path / "bundles").mkdir(exist_ok=True)
        os.symlink(small_bundle(name), tmp_path / "bundles" / name)
    for folder in ("samples", "demo"):
        os.symlink(ROOT / folder, tmp_path / folder)
    script = tmp_path / "block.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")


def test_readme_fits_a_screenful_and_links_resolve():
    """The README stays short (details live in docs/), and every relative link of the README
    and the docs pages names a file that exists (anchors are not checked)."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
