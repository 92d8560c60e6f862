"""Every ```python block in the docs runs: a page's blocks run in order in one namespace.

A python block followed directly (after one blank line) by a ```text block shows its output
there: what the block prints must be that text, numbers within a few units of their last
printed digit or 5 % (timings and the last digits of floating-point sums vary between machines).
"""

import contextlib
import io
import math
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text(encoding="utf-8"))
BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```)?", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?(?:e[-+]?\d+)?")


def _same_output(printed: str, shown: str) -> bool:
    """``printed`` is ``shown``, each number within 3 units of its last shown digit or 5 %."""
    if NUMBER.sub("#", printed).strip() != NUMBER.sub("#", shown).strip():
        return False
    for got, want in zip(NUMBER.finditer(printed), NUMBER.finditer(shown), strict=True):
        unit = 10.0 ** -len(want[1] or "")
        if not math.isclose(float(got[0]), float(want[0]), rel_tol=0.05, abs_tol=3 * unit):
            return False
    return True


def test_docs_have_runnable_examples():
    assert len(PAGES) >= 3


def test_shown_outputs_are_compared():
    assert _same_output("loss 0.2116, [1.0, -2.1]\n", "loss 0.2114, [1.0, -2.0]")
    assert not _same_output("loss 0.3114\n", "loss 0.2114")
    assert not _same_output("loss 0.2114 mm\n", "loss 0.2114")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict = {"__name__": "__docs__"}
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python block"
    for index, (code, shown) in enumerate(blocks):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
        if shown:
            assert _same_output(printed.getvalue(), shown), (
                f"{page.name} block {index} printed\n{printed.getvalue()}but the page shows\n{shown}"
            )
