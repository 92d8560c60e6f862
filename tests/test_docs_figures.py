"""The home page and the tutorials show the figures their own code makes.

``docs/figures/make_page_figures.py`` runs each page's code and writes the figures; every PNG
records the SHA-256 of its page's python blocks, so editing a page's code without rerunning the
script fails here. The tutorials' figures are the very files their code writes: running the
code again must write the same pictures.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("make_page_figures", ROOT / "docs" / "figures" / "make_page_figures.py")
figures = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = figures  # its dataclass looks its module up
_SPEC.loader.exec_module(figures)

SHOWN = [(figures.HOME, figures.HOME_FIGURE)] + [
    (tutorial.page, tutorial.figure(name)) for tutorial in figures.TUTORIALS for name in tutorial.written
]


def _ids(item) -> str:
    return item[1].name


@pytest.mark.parametrize("shown", SHOWN, ids=_ids)
def test_a_figure_records_the_code_of_its_page(shown):
    page, figure = shown
    with Image.open(figure) as image:
        recorded = image.text.get("Source")
    assert recorded == figures.source_stamp(page), (
        f"{figure.name} was made from other code than {page.name} holds now: "
        "run python docs/figures/make_page_figures.py"
    )


@pytest.mark.parametrize("shown", SHOWN, ids=_ids)
def test_the_page_shows_its_figure(shown):
    page, figure = shown
    assert f"figures/{figure.name})" in page.read_text(encoding="utf-8")


def test_the_code_digest_follows_the_code_only():
    digest = figures.code_digest("Text.\n\n```python\nprint(1)\n```\n")
    assert figures.code_digest("Other text.\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n") == digest
    assert figures.code_digest("Text.\n\n```python\nprint(2)\n```\n") != digest


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _same_picture(written: np.ndarray, shown: np.ndarray) -> bool:
    """Same size, and at most 2 % of the pixels differ by more than 8 grey levels in a channel.

    On another machine, rounding may move a DRR's 8-bit value by one and a registration's
    result by a fraction of a millimetre (an edge by a pixel of the overlay); a different view,
    pose or image differs in far more pixels.
    """
    if written.shape != shown.shape:
        return False
    return float((np.abs(written - shown).max(axis=-1) > 8).mean()) <= 0.02


def test_same_picture_tells_pictures_apart():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (40, 40, 3)).astype(np.int16)
    assert _same_picture(picture, picture.clip(1, 254) + rng.integers(-1, 2, picture.shape))
    assert not _same_picture(picture, np.roll(picture, 3, axis=1))
    assert not _same_picture(picture, picture[:, :39])


@pytest.mark.parametrize(
    "tutorial",
    [
        pytest.param(figures.TUTORIALS[0], id="render-your-ct"),
        pytest.param(figures.TUTORIALS[1], id="register-xray", marks=pytest.mark.slow),
    ],
)
def test_the_tutorial_code_writes_the_figures_it_shows(tutorial, tmp_path, capsys):
    figures.run_in(tmp_path, tutorial.page)
    for name in tutorial.written:
        assert _same_picture(_pixels(tmp_path / name), _pixels(tutorial.figure(name))), (
            f"{tutorial.page.name} writes another {name} than docs/figures/{tutorial.figure(name).name}: "
            "run python docs/figures/make_page_figures.py"
        )
