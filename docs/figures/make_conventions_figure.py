"""Draw docs/figures/frames.png from xrender's own geometry (run: python docs/figures/make_conventions_figure.py).

The figure is computed with the same functions the library uses (standard_pose, pixels_to_camera),
so the picture cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from xrender.geometry.camera import ConeBeam, pixels_to_camera
from xrender.geometry.se3 import transform_points
from xrender.geometry.views import standard_pose
from xrender.plot import save_figure

OUT = Path(__file__).with_name("frames.png")


def _arrow3d(ax, start, vector, color, label):
    ax.quiver(*start, *vector, color=color, arrow_length_ratio=0.12, linewidth=2)
    ax.text(*(start + 1.12 * vector), label, color=color, fontsize=9)


def main() -> None:
    geometry = ConeBeam(sdd=1020.0, height=6, width=8, pixel_spacing=(50.0, 50.0), sid=620.0)
    iso = torch.zeros(3, dtype=torch.float64)
    pose = standard_pose("ap", geometry.sid, iso)
    K = geometry.intrinsics(dtype=torch.float64)
    h, w = geometry.height, geometry.width
    corners_px = torch.tensor([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], dtype=torch.float64)
    corners = transform_points(pose, pixels_to_camera(corners_px, K, torch.tensor(geometry.sdd))).numpy()
    source = pose[:3, 3].numpy()
    R = pose[:3, :3].numpy()

    fig = Figure(figsize=(14, 6.5), layout="constrained")
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax.set_title("AP view: world (LPS), camera and detector frames")
    ax.add_collection3d(Poly3DCollection([corners], facecolor=(0.6, 0.7, 0.9, 0.35), edgecolor="k"))
    for c in corners:
        ax.plot(*zip(source, c), color="0.6", linewidth=0.8)
    ax.plot(*zip(source, source + R[:, 2] * geometry.sdd), "k--", linewidth=1)
    for axis, name in enumerate(("x (L)", "y (P)", "z (S)")):
        _arrow3d(ax, np.zeros(3), np.eye(3)[axis] * 150, "0.25", f"world {name}")
    for axis, (color, name) in enumerate(zip(("tab:red", "tab:green", "tab:blue"), ("x_cam", "y_cam", "z_cam"))):
        _arrow3d(ax, source, R[:, axis] * 180, color, name)
    top_left = corners[0]
    _arrow3d(ax, top_left, R[:, 0] * 250, "tab:purple", "u (columns)")
    _arrow3d(ax, top_left, R[:, 1] * 250, "tab:orange", "v (rows)")
    ax.scatter(*source, color="k", s=30)
    ax.text(source[0], source[1], source[2] + 40, "source = camera origin", fontsize=9)
    ax.scatter(0, 0, 0, color="k", s=20)
    ax.text(0, 0, -45, "isocentre", fontsize=9)
    ax.text(*corners[2], "  detector (z_cam = sdd)", fontsize=9)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    ax.view_init(elev=22, azim=-28)
    ax.set_box_aspect((1, 2.2, 1))

    ax2 = fig.add_subplot(1, 2, 2)
    ax2.set_title("Detector seen from the source: pixel (u, v) = (column, row)")
    for v in range(h):
        for u in range(w):
            ax2.add_patch(Rectangle((u - 0.5, v - 0.5), 1, 1, fill=False, edgecolor="0.7"))
            ax2.plot(u, v, ".", color="0.5")
    ax2.plot(0, 0, "o", color="tab:purple")
    ax2.annotate("(0, 0): centre of the top-left pixel", (0, 0), xytext=(0.3, 1.4), arrowprops={"arrowstyle": "->"})
    cu, cv = geometry.principal_point
    ax2.plot(cu, cv, "x", color="k", ms=10, mew=2)
    ax2.annotate(
        "principal point (c_u, c_v)\n= ((W−1)/2, (H−1)/2) + offset",
        (cu, cv),
        xytext=(cu + 0.2, h + 1.6),
        arrowprops={"arrowstyle": "->"},
    )
    ax2.annotate("", (3, -1.2), (-0.5, -1.2), arrowprops={"arrowstyle": "->", "color": "tab:purple", "lw": 2})
    ax2.text(3.2, -1.2, "+u = +x_cam", color="tab:purple", va="center")
    ax2.annotate("", (-1.2, 3), (-1.2, -0.5), arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 2})
    ax2.text(-1.2, 3.3, "+v = +y_cam", color="tab:orange", ha="center", va="top", rotation=90)
    ax2.set_xlim(-2, w)
    ax2.set_ylim(h + 2.4, -2)
    ax2.set_aspect("equal")
    ax2.set_xticks(range(w))
    ax2.set_yticks(range(h))
    ax2.set_xlabel("u (pixels)")
    ax2.set_ylabel("v (pixels)")
    save_figure(fig, OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
