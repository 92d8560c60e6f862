"""Run the code of the home page and of two tutorials, and write the figures those pages show.

Run: ``python docs/figures/make_page_figures.py``. Each page's python blocks run in order in one
namespace (``run_page`` of ``make_getting_started_figures.py``), in a scratch folder:

* ``docs/index.md``: ``home_gradient.png`` is drawn from what the snippet computed (the X-ray,
  the DRR at the moved pose and their difference);
* ``docs/tutorials/render-your-ct.md`` and ``docs/tutorials/register-xray.md``: the image files
  the page's code writes and the page shows are copied here unchanged, as ``<prefix>_<name>``.

Every PNG carries, in its PNG text chunk ``Source``, the SHA-256 of its page's python blocks;
``tests/test_docs_figures.py`` checks it against the page (edit the code, rerun this script), and
runs the tutorials' code again to compare the files it writes with the copies here.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
sys.path.insert(0, str(HERE))
from make_getting_started_figures import run_page  # noqa: E402

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class PageFigures:
    """The figures a page shows that its own code writes: ``written`` files, copied as ``<prefix>_<name>``."""

    page: Path
    prefix: str
    written: tuple[str, ...]

    def figure(self, name: str) -> Path:
        """Where the copy of the written file ``name`` lives."""
        return HERE / f"{self.prefix}_{name}"


HOME = DOCS / "index.md"
HOME_FIGURE = HERE / "home_gradient.png"
TUTORIALS = (
    PageFigures(
        DOCS / "tutorials" / "render-your-ct.md",
        "render_your_ct",
        ("drr_ap.png", "drr_tilted.png", "landmarks.png"),
    ),
    PageFigures(DOCS / "tutorials" / "register-xray.md", "register_xray", ("overlay.png",)),
)


def code_digest(markdown: str) -> str:
    """The SHA-256 of a page's python blocks (its prose and other blocks do not count)."""
    return hashlib.sha256("".join(PYTHON_BLOCK.findall(markdown)).encode()).hexdigest()


def source_stamp(page: Path) -> str:
    """What a figure of ``page`` records: the page and the `code_digest` of its python blocks."""
    return f"{page.relative_to(DOCS).as_posix()} python sha256 {code_digest(page.read_text(encoding='utf-8'))}"


def stamped_copy(source: Path, target: Path, page: Path) -> None:
    """Copy the PNG ``source`` to ``target`` with its pixels unchanged and ``page``'s `source_stamp`."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", source_stamp(page))
    with Image.open(source) as image:
        image.save(target, pnginfo=info)
    print("wrote", target.relative_to(DOCS.parent))


def run_in(folder: Path, page: Path) -> dict:
    """Run ``page``'s python blocks with ``folder`` as the working directory; return their namespace."""
    with contextlib.chdir(folder):
        namespace, outputs = run_page(page)
    for index, printed in enumerate(outputs):
        print(f"--- {page.name} block {index}\n{printed}", end="")
    return namespace


def home_figure(namespace: dict, path: Path) -> None:
    """The home snippet's images: the X-ray, the DRR at the moved pose and their difference."""
    from matplotlib.figure import Figure

    xray, drr = (namespace[name].detach()[0, 0].numpy() for name in ("xray", "drr"))
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    difference = drr - xray
    limit = float(abs(difference).max())
    panels = (
        (xray, "xray: the X-ray to match", {"cmap": "gray"}),
        (drr, "drr: at the moved pose", {"cmap": "gray"}),
        (difference, "drr − xray", {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}),
    )
    for ax, (image, title, style) in zip(axes, panels):
        shown = ax.imshow(image, **style)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.colorbar(shown, ax=axes[2], shrink=0.8, label="line integral")
    fig.savefig(path, dpi=100)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        drawn = Path(scratch) / HOME_FIGURE.name
        home_figure(run_in(Path(scratch), HOME), drawn)
        stamped_copy(drawn, HOME_FIGURE, HOME)
    for tutorial in TUTORIALS:
        with tempfile.TemporaryDirectory() as scratch:
            run_in(Path(scratch), tutorial.page)
            for name in tutorial.written:
                stamped_copy(Path(scratch) / name, tutorial.figure(name), tutorial.page)


if __name__ == "__main__":
    main()
