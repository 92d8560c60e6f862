"""Draw docs/figures/dicom_angles.png (run: python docs/figures/make_dicom_angles_figure.py).

The C-arm positions and the image labels are computed with `xrender.geometry.carm.carm_view` and
`xrender.geometry.project`, the functions `xrender.io.read_carm` applies to real files, so the
picture cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle

from xrender.geometry.camera import project
from xrender.geometry.carm import CArmTags, carm_geometry, carm_view
from xrender.plot import save_figure

OUT = Path(__file__).with_name("dicom_angles.png")
SID, SDD, SIZE = 600.0, 1000.0, 64
ISOCENTER = torch.zeros(3, dtype=torch.float64)


def _tags(primary: float, secondary: float) -> CArmTags:
    return CArmTags(
        sdd=SDD, sid=SID, imager_pixel_spacing=(5.0, 5.0), primary_angle_deg=primary, secondary_angle_deg=secondary
    )


def _draw_carm(ax, source: np.ndarray, beam: np.ndarray, color: str, label: str) -> None:
    """Source dot, beam arrow and detector bar in the plot's 2-D coordinates."""
    detector = source + SDD * beam
    across = np.array([-beam[1], beam[0]]) * 160
    ax.plot(*source, "o", color=color, ms=7)
    ax.annotate("", detector, source, arrowprops={"arrowstyle": "->", "color": color, "lw": 1.2, "alpha": 0.7})
    ax.plot(*zip(detector - across, detector + across), color=color, lw=5, solid_capstyle="butt")
    ax.text(*(detector + 0.22 * SDD * beam), label, color=color, ha="center", va="center", fontsize=10)


def _panel(ax, title: str, angles: list[tuple[float, float, str, str]], plane, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.add_patch(Ellipse((0, 0), *plane["body"], facecolor="0.9", edgecolor="0.5"))
    for primary, secondary, color, label in angles:
        pose = carm_view(_tags(primary, secondary), ISOCENTER).pose
        _draw_carm(ax, plane["project"](pose[:3, 3].numpy()), plane["project"](pose[:3, 2].numpy()), color, label)
    for text, position in plane["labels"]:
        ax.text(*position, text, ha="center", va="center", fontsize=9, color="0.3")
    ax.plot(0, 0, "k+", ms=10)
    ax.set_xlim(-900, 900)
    ax.set_ylim(-900, 900)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([])
    ax.set_yticks([])


def _image_panel(ax, title: str, mirrored: bool) -> None:
    """Where the patient's directions land in the stored image (mirrored) or in xrender's image."""
    tags = _tags(0.0, 0.0)
    geometry, view = carm_geometry(tags, (SIZE, SIZE)), carm_view(tags, ISOCENTER)
    K = geometry.intrinsics(dtype=torch.float64)
    centre = (SIZE - 1) / 2
    ax.set_title(title)
    ax.add_patch(Rectangle((-0.5, -0.5), SIZE, SIZE, facecolor="0.95", edgecolor="k"))
    for letter, direction in {"L": (1, 0, 0), "R": (-1, 0, 0), "H": (0, 0, 1), "F": (0, 0, -1)}.items():
        point = ISOCENTER + 100.0 * torch.tensor(direction, dtype=torch.float64)
        u, v = project(point[None], view.pose, K)[0].tolist()
        u = SIZE - 1 - u if mirrored else u
        offset = np.array([u - centre, v - centre])
        x, y = centre + 0.42 * SIZE * offset / np.linalg.norm(offset)
        ax.text(x, y, letter, ha="center", va="center", fontsize=16, fontweight="bold")
    ax.annotate("", (SIZE * 0.35, -4), (-0.5, -4), arrowprops={"arrowstyle": "->", "color": "tab:purple"})
    ax.text(SIZE * 0.37, -4, "columns (u)", va="center", color="tab:purple", fontsize=9)
    ax.set_xlim(-3, SIZE + 3)
    ax.set_ylim(SIZE + 3, -8)
    ax.set_aspect("equal")
    ax.axis("off")


def main() -> None:
    fig = Figure(figsize=(15, 5.4), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=(1, 1, 0.62, 0.62))
    transverse = {  # seen from the feet: patient's left on the right, anterior up
        "project": lambda p: np.array([p[0], -p[1]]),
        "body": (360, 230),
        "labels": [("A", (0, 150)), ("P", (0, -150)), ("L", (215, 40)), ("R", (-215, 40))],
    }
    _panel(
        axes[0],
        "Positioner Primary Angle (0018,1510)\nseen from the feet",
        [(0.0, 0.0, "k", "0°"), (90.0, 0.0, "tab:blue", "LAO +90°"), (-45.0, 0.0, "tab:red", "RAO −45°")],
        transverse,
        "x: patient's right → left",
        "−y: posterior → anterior",
    )
    sagittal = {  # seen from the patient's left: anterior on the left, head up
        "project": lambda p: np.array([p[1], p[2]]),
        "body": (230, 600),
        "labels": [("A", (-150, 40)), ("P", (150, 40)), ("H", (0, 340)), ("F", (0, -340))],
    }
    _panel(
        axes[1],
        "Positioner Secondary Angle (0018,1511)\nseen from the patient's left",
        [(0.0, 0.0, "k", "0°"), (0.0, 30.0, "tab:blue", "CRA +30°"), (0.0, -30.0, "tab:red", "CAU −30°")],
        sagittal,
        "y: anterior → posterior",
        "z: feet → head",
    )
    _image_panel(axes[2], "0°/0° as DICOM stores it\n(seen from the detector)", mirrored=True)
    _image_panel(axes[3], "after flip 'horizontal':\nxrender's view from the source", mirrored=False)
    fig.suptitle("C-arm angles (dot: source, bar: detector) and the mirror between DICOM's image and xrender's")
    save_figure(fig, OUT, dpi=100)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
