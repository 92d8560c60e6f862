"""Figures a person would rather look at than read: orthogonal slices with landmarks.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI
backend), so they work on headless machines and inside libraries.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure
from torch import Tensor

from xrender.io import atomic_output
from xrender.landmarks import Landmarks
from xrender.volume import Volume

__all__ = ["plot_drr_with_landmarks", "plot_orthogonal_slices", "save_figure"]

# (title, world axis fixed by the slice, world axes shown (horizontal, vertical), vertical axis points up)
_PLANES = (
    ("axial", 2, (0, 1), False),
    ("coronal", 1, (0, 2), True),
    ("sagittal", 0, (1, 2), True),
)
_AXIS_LABELS = ("x: right → left (mm)", "y: anterior → posterior (mm)", "z: inferior → superior (mm)")


def _in_plane_labels(landmarks: Landmarks | None, h: int, v: int) -> dict[tuple[float, float], str]:
    """Landmarks projected onto the plane of world axes ``(h, v)``; names landing within 1 mm share a label."""
    labels: dict[tuple[float, float], str] = {}
    if landmarks is None:
        return labels
    for name, point in zip(landmarks.names, landmarks.points.detach().cpu().double().tolist()):
        key = (round(point[h]), round(point[v]))
        labels[key] = f"{labels[key]}/{name}" if key in labels else name
    return labels


def plot_orthogonal_slices(
    volume: Volume,
    landmarks: Landmarks | None = None,
    *,
    window: tuple[float, float] = (-400.0, 1200.0),
    title: str | None = None,
) -> Figure:
    """Axial, coronal and sagittal slices through the isocentre, with landmarks overlaid.

    Shown in the radiological convention: the patient's right on the image's left, anterior up
    in the axial view, superior up in the coronal and sagittal views; axes in world mm (LPS).
    The volume is first reoriented to the closest world-aligned (LPS) voxel order with
    SimpleITK's ``DICOMOrient`` (exact for axis-aligned scans). Every landmark is drawn at its
    in-plane position on every view (projected along the slice's normal) and labelled.

    Args:
        volume: the volume; its first channel is shown.
        landmarks: named world points in mm (LPS) to overlay.
        window: display range of the voxel values (default: a bone-and-tissue HU window).
        title: figure title.

    Returns:
        A matplotlib figure with three panels.
    """
    image = sitk.DICOMOrient(volume.with_data(volume.data[:1]).to_sitk(), "LPS")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # world-ordered (x, y, z)
    origin, spacing = np.array(image.GetOrigin()), np.array(image.GetSpacing())
    lower, upper = origin - spacing / 2, origin + spacing * (np.array(image.GetSize()) - 0.5)
    iso = np.round((volume.isocenter.detach().cpu().double().numpy() - origin) / spacing).astype(int)
    iso = np.clip(iso, 0, np.array(array.shape) - 1)

    fig = Figure(figsize=(15, 5.4), layout="constrained")
    for ax, (name, fixed, (h, v), up) in zip(fig.subplots(1, 3), _PLANES):
        plane = np.take(array, iso[fixed], axis=fixed).T  # rows along the vertical world axis
        extent = (lower[h], upper[h], lower[v], upper[v]) if up else (lower[h], upper[h], upper[v], lower[v])
        ax.imshow(plane, cmap="gray", vmin=window[0], vmax=window[1], extent=extent, origin="lower" if up else "upper")
        for (x, y), label in _in_plane_labels(landmarks, h, v).items():
            ax.plot(x, y, "o", ms=5, mfc="none", mec="tab:orange", mew=1.5)
            ax.annotate(label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:orange")
        ax.set_title(name)
        ax.set_xlabel(_AXIS_LABELS[h])
        ax.set_ylabel(_AXIS_LABELS[v])
    if title:
        fig.suptitle(title)
    return fig


def plot_drr_with_landmarks(
    image: Tensor,
    pixels: Tensor | None = None,
    names: tuple[str, ...] = (),
    *,
    title: str | None = None,
) -> Figure:
    """A DRR ``(H, W)`` shown as the detector sees it, with points ``(N, 2)`` in pixels ``(u, v)`` marked.

    Pixel ``(0, 0)`` is the centre of the top-left pixel, as everywhere in xrender.
    """
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    height, width = image.shape[-2:]
    ax.imshow(image.detach().cpu().numpy(), cmap="gray", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    if pixels is not None:
        uv = pixels.detach().cpu().double().numpy()
        ax.plot(uv[:, 0], uv[:, 1], "+", color="tab:orange", ms=8, mew=1.5)
        for name, (u, v) in zip(names, uv):
            ax.annotate(name, (u, v), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:orange")
    ax.set_xlabel("u (columns)")
    ax.set_ylabel("v (rows)")
    if title:
        ax.set_title(title)
    return fig


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``figure`` to ``path`` atomically (`xrender.io.atomic_output`), creating parent folders."""
    with atomic_output(path) as staging:
        figure.savefig(staging, dpi=dpi)
    return Path(path)
