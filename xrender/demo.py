"""The ``xrender demo`` job: build the embedded phantom, show its slices and landmarks, render it.

Runs offline on the embedded default data: voxelizes the pelvis phantom, draws its orthogonal
slices with the 14 landmarks, and renders an AP DRR in the ProST geometry with the landmarks
projected onto it (they must sit on the matching anatomy — the conventions, checked by eye).
Later stages of the project grow it into the full registration demo (register, report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_preset, project, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.plot import plot_drr_with_landmarks, plot_orthogonal_slices, save_figure
from xrender.render import render
from xrender.volume import Volume

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    volume: Volume
    figure_path: Path
    drr_path: Path
    seconds: float
    render_seconds: float


def run_demo(out_dir: Path, size: int = 128) -> DemoResult:
    """Voxelize the phantom at ``size³``; write ``phantom_slices.png`` and ``phantom_drr.png`` to ``out_dir``."""
    start = time.perf_counter()
    phantom = pelvis_phantom()
    volume = phantom.to_volume(size)
    seconds = time.perf_counter() - start
    figure = plot_orthogonal_slices(
        volume, phantom.landmarks, title=f"xrender pelvis phantom, {size}³ voxels, HU (window −400…1200)"
    )
    slices = save_figure(figure, Path(out_dir) / "phantom_slices.png")

    carm = get_preset("prost")
    pose = standard_pose("ap", carm.sid, volume.isocenter)
    start = time.perf_counter()
    drr = render(hu_to_mu(volume), carm, pose)[0, 0]
    render_seconds = time.perf_counter() - start
    pixels = project(phantom.landmarks.points.to(pose.dtype), pose, carm.intrinsics(dtype=pose.dtype))
    title = "AP DRR (ProST geometry, ∫μ dl) with the landmarks projected"
    figure = plot_drr_with_landmarks(drr, pixels, phantom.landmarks.names, title=title)
    drr_path = save_figure(figure, Path(out_dir) / "phantom_drr.png")
    return DemoResult(volume, slices, drr_path, seconds, render_seconds)
