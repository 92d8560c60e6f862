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

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text(encoding="utf-8"))
BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n(.*?)^```)?", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?(?:e[-+]?\d+)?")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: The longest code line the rendered site shows whole. In a 1300-pixel-wide window (headless
#: Chromium), mkdocs-material's content column is 688 px wide and its code box shows 82 characters
#: of a row of digits; the last two sit under the box's fade, so 80.
CODE_WIDTH = 80

#: Every page of the site; each one's fenced blocks must fit `CODE_WIDTH`.
ALL_PAGES = sorted(DOCS.rglob("*.md"))


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


def test_every_page_is_checked_for_long_code_lines():
    assert len(ALL_PAGES) >= 20
    assert DOCS / "index.md" in ALL_PAGES


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_code_lines_fit_the_code_box(page):
    text = page.read_text(encoding="utf-8")
    long = [line for block in FENCE.findall(text) for line in block.splitlines() if len(line) > CODE_WIDTH]
    name = page.relative_to(DOCS)
    assert not long, f"{name}: fenced lines longer than {CODE_WIDTH} characters are clipped on the page:\n" + "\n".join(
        long
    )


def _packages(folder: Path, prefix: str) -> set[str]:
    """The importable modules and packages directly in ``folder``, as ``prefix.name``."""
    return {
        f"{prefix}.{entry.stem}"
        for entry in folder.iterdir()
        if not entry.is_symlink()
        and entry.name != "__init__.py"
        and ((entry.is_dir() and (entry / "__init__.py").exists()) or entry.suffix == ".py")
    }


def test_the_home_page_places_every_package():
    """``Where things live`` has a row for each module and package of ``xrender/`` and ``recipes/``."""
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    table = text[text.index("## Where things live") :].split("\n## ")[0]
    named = set(re.findall(r"^\| (.*?) \|", table, re.MULTILINE))
    listed = {name for row in named for name in re.findall(r"`(xrender[\w.]*)`", row)}
    private = {"xrender._checks", "xrender._registry"}  # helpers of the library, not places to look
    packages = _packages(ROOT / "xrender", "xrender") | _packages(ROOT / "recipes", "xrender.recipes")
    assert sorted(packages - private - listed) == []
