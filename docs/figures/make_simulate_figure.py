"""Draw the picture of the *Simulate realistic X-rays* how-to through ``xrender simulate`` itself.

Run: ``python docs/figures/make_simulate_figure.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from xrender.cli import app
from xrender.plot import save_figure

HERE = Path(__file__).parent
KVPS = (60, 120)
DOSES = (1e3, 1e5)


def main() -> Path:
    fig = Figure(figsize=(7.2, 7.0), layout="constrained")
    axes = fig.subplots(len(KVPS), len(DOSES))
    with tempfile.TemporaryDirectory() as folder:
        for row, kvp in enumerate(KVPS):
            for col, dose in enumerate(DOSES):
                out = Path(folder) / f"xray_{kvp}_{dose:g}.npy"
                args = ["simulate", "--phantom", "--size", "128", "--kvp", str(kvp), "--dose", f"{dose:g}"]
                app([*args, "--out", str(out)], standalone_mode=False)
                image = np.load(out)[0]
                low, high = np.percentile(image, (1, 99))
                axes[row, col].imshow(image, cmap="gray", vmin=low, vmax=high)
                axes[row, col].set_title(f"--kvp {kvp} --dose {dose:g}", fontsize=9)
                axes[row, col].set_axis_off()
    return save_figure(fig, HERE / "simulate_grid.png", dpi=90)


if __name__ == "__main__":
    print(main())
