"""The ``xrender demo`` job: the phantom, a DRR, and CMA-ES alone vs ProST → CMA-ES on simulated X-rays.

Runs offline on the embedded default data:

1. voxelizes the pelvis phantom and draws its orthogonal slices with the 14 landmarks;
2. renders an AP DRR in the ProST geometry with the landmarks projected onto it (they must sit on
   the matching anatomy — the conventions, checked by eye);
3. registers a few simulated X-rays (true poses from ``prost-train``; initial poses offset in
   directions drawn from ``"wide"``, one trial per 40 mm bin of initial mean TRE up to
   `DEMO_RANGE_MM`) with CMA-ES alone and with ProST → CMA-ES, using the ProST model shipped in
   ``recipes/data`` (its training command is in that folder's README), and writes
   ``results.json``, ``results.md``, ``capture_range.png`` and overlays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_preset, project, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.plot import plot_drr_with_landmarks, plot_orthogonal_slices, save_figure
from xrender.recipes.registration.command import EvaluationRequest, run_evaluation
from xrender.recipes.registration.evaluation import EvaluationConfig
from xrender.recipes.registration.report import markdown_table
from xrender.render import render
from xrender.volume import Volume

__all__ = ["DEMO_METHODS", "DEMO_MODEL", "DEMO_RANGE_MM", "DemoResult", "run_demo"]

#: The ProST model the demo registers with (trained by the project's recipe; see recipes/data/README.md).
DEMO_MODEL = Path(__file__).parent / "data" / "prost-phantom.pt"

#: The comparison the demo runs: the paper's baseline and its method (with the stage 1 that measured best,
#: descent from 24 starts); the baseline gets the method's wall time per trial (equal time).
DEMO_METHODS = ("cmaes", "prost:multistart+cmaes")

#: The demo's trials spread their initial mean TRE over 40 mm bins up to this (mm).
DEMO_RANGE_MM = 200.0


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    volume: Volume
    figure_path: Path
    drr_path: Path
    seconds: float
    render_seconds: float
    table: str | None


def run_demo(out_dir: Path, size: int = 128, trials: int = 5, progress: bool = True) -> DemoResult:
    """Voxelize the phantom at ``size³``, draw it, render it, and register ``trials`` simulated X-rays.

    Trial ``k`` starts with an initial mean TRE in the ``k``-th 40 mm bin up to `DEMO_RANGE_MM`
    (cycling), so five trials span 0–200 mm and the capture-range figure shows how far each method
    still converges; in each trial ``cmaes`` gets the wall time the two-stage method took.

    Writes ``phantom_slices.png`` and ``phantom_drr.png`` to ``out_dir`` and, with ``trials > 0``,
    the evaluation files of `xrender.recipes.registration.command.run_evaluation` (``results.json``,
    ``results.md``, ``capture_range.png``, ``overlays/``).
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    phantom = pelvis_phantom()
    volume = phantom.to_volume(size)
    seconds = time.perf_counter() - start
    figure = plot_orthogonal_slices(
        volume, phantom.landmarks, title=f"xrender pelvis phantom, {size}³ voxels, HU (window −400…1200)"
    )
    slices = save_figure(figure, out_dir / "phantom_slices.png")

    carm = get_preset("prost")
    pose = standard_pose("ap", carm.sid, volume.isocenter)
    start = time.perf_counter()
    drr = render(hu_to_mu(volume), carm, pose)[0, 0]
    render_seconds = time.perf_counter() - start
    pixels = project(phantom.landmarks.points.to(pose.dtype), pose, carm.intrinsics(dtype=pose.dtype))
    title = "AP DRR (ProST geometry, ∫μ dl) with the landmarks projected"
    figure = plot_drr_with_landmarks(drr, pixels, phantom.landmarks.names, title=title)
    drr_path = save_figure(figure, out_dir / "phantom_drr.png")

    table = None
    if trials > 0:
        request = EvaluationRequest(
            phantom=True,
            methods=list(DEMO_METHODS),
            out=out_dir,
            model=DEMO_MODEL,
            config=EvaluationConfig(
                trials=trials,
                seed=0,
                initial_distribution="wide",
                equal_time=DEMO_METHODS[1],
                stratify=tuple(float(edge) for edge in range(0, int(DEMO_RANGE_MM) + 1, 40)),
            ),
            volume_size=size,
            overlays=trials,
            progress=progress,
        )
        document = run_evaluation(request, echo=lambda _: None)
        table = markdown_table(document["methods"])
    return DemoResult(volume, slices, drr_path, seconds, render_seconds, table)
