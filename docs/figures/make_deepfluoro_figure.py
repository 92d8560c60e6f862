"""Draw the DeepFluoro conventions figure: stored images vs. xrender's view from the source.

Run: ``python docs/figures/make_deepfluoro_figure.py``. It simulates a small file with the release's
layout (`xrender.datasets.simulated`), reads it back through `xrender.datasets.deepfluoro`, and shows
each projection as stored (with the file's 2-D landmarks) and as xrender sees it (with the DRR's
edges at the converted ground-truth pose and the 3-D landmarks projected by xrender's camera).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from matplotlib.figure import Figure

from xrender.attenuation import hu_to_mu
from xrender.datasets.deepfluoro import DeepFluoro, preprocess_projection
from xrender.datasets.simulated import write_simulated_deepfluoro
from xrender.geometry import project
from xrender.plot import overlay_frame, save_figure
from xrender.render import render

HERE = Path(__file__).parent


def main() -> Path:
    figure = Figure(figsize=(9, 8.6), layout="constrained")
    axes = figure.subplots(2, 2)
    with tempfile.TemporaryDirectory() as folder:
        path = write_simulated_deepfluoro(Path(folder) / "sim.h5", projections=2, pixel_spacing=1.552, border=24)
        with h5py.File(path, "r") as file, DeepFluoro(path) as data:
            mu = hu_to_mu(data.volume("phantom"))
            points = data.landmarks("phantom").points
            for row, index in enumerate((0, 1)):
                group = file[f"phantom/projections/{index:03d}"]
                stored = -np.log(group["image/pixels"][()] / group["image/pixels"][()].max())
                marks = np.array([group[f"gt-landmarks/{n}"][()].ravel() for n in group["gt-landmarks"]])
                flag = int(group["rot-180-for-up"][()])
                ax = axes[row, 0]
                ax.imshow(stored, cmap="gray")
                ax.scatter(marks[:, 0], marks[:, 1], s=14, c="yellow", label="file's 2-D landmarks")
                ax.set_title(f"projection {index:03d} as stored (rot-180-for-up = {flag})", fontsize=10)
                projection = preprocess_projection(data.projection("phantom", index), binning=2, border=24)
                with torch.no_grad():
                    drr = render(mu, projection.geometry, projection.pose)[0, 0]
                uv = project(points, projection.pose, projection.geometry.intrinsics(dtype=torch.float64))
                ax = axes[row, 1]
                ax.imshow(overlay_frame(projection.image, drr))
                ax.scatter(uv[:, 0], uv[:, 1], s=14, c="cyan", marker="x", label="3-D landmarks, projected")
                ax.set_title(f"xrender: flip = {projection.flip!r}, cropped, −log, binned by 2", fontsize=10)
                for ax, (height, width) in zip(axes[row], (stored.shape, projection.image.shape)):
                    ax.set_xlim(-0.5, width - 0.5)
                    ax.set_ylim(height - 0.5, -0.5)
                    ax.set_xlabel("u (columns)")
                    ax.set_ylabel("v (rows)")
                    ax.legend(loc="lower right", fontsize=8)
    figure.suptitle("DeepFluoro: stored as seen from the detector side; xrender: as seen from the source, head up")
    return save_figure(figure, HERE / "deepfluoro_conventions.png")


if __name__ == "__main__":
    print(main())
