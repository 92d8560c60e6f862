"""Run the Getting started page's code and draw its figures from what it computed.

Run: ``python docs/figures/make_getting_started_figures.py``. It executes the page's python blocks
in order in one namespace (as ``tests/test_docs.py`` does, which also checks the outputs the page
shows), prints what each block prints, and writes ``getting_started_*.png`` next to this script.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from matplotlib.figure import Figure

from xrender.plot import save_figure

HERE = Path(__file__).parent
PAGE = HERE.parent / "getting-started.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def run_page(page: Path = PAGE) -> tuple[dict, list[str]]:
    """Execute ``page``'s python blocks; return the namespace and what each block printed."""
    namespace: dict = {"__name__": "__docs__"}
    outputs = []
    for index, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8"))):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
        outputs.append(printed.getvalue())
    return namespace, outputs


def _image(ax, image, title: str, cmap: str = "gray", **kwargs) -> None:
    shown = ax.imshow(image.detach().squeeze().cpu().numpy(), cmap=cmap, **kwargs)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    return shown


def main() -> None:
    from xrender.render import render

    ns, outputs = run_page()
    for index, printed in enumerate(outputs):
        print(f"--- block {index}\n{printed}", end="")

    fig = Figure(figsize=(4.2, 4.0), layout="constrained")
    _image(fig.subplots(), ns["drr"], "AP DRR of the phantom (128 × 128)")
    print("wrote", save_figure(fig, HERE / "getting_started_drr.png"))

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    _image(axes[0], ns["xray"], "X-ray to match (motion = 0)")
    _image(axes[1], ns["moved"], "DRR at the moved pose")
    difference = (ns["moved"] - ns["xray"]).detach()
    limit = float(difference.abs().max())
    shown = _image(axes[2], difference, "DRR − X-ray", cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(shown, ax=axes[2], shrink=0.8)
    print("wrote", save_figure(fig, HERE / "getting_started_gradient.png"))

    subject, small, target = ns["subject"], ns["small"], ns["target"]
    start = render(subject.full, small, ns["start"][None])
    found = render(subject.full, small, ns["result"].pose[None])
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    tre = ns["tre"]
    _image(axes[0], target, "X-ray (32 × 32)")
    _image(axes[1], start, f"DRR at the start: TRE {tre(ns['start']):.1f} mm")
    _image(axes[2], found, f"registered: TRE {tre(ns['result'].pose):.2f} mm")
    print("wrote", save_figure(fig, HERE / "getting_started_registration.png"))


if __name__ == "__main__":
    main()
