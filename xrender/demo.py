"""The ``xrender demo`` job: build the embedded phantom and show its slices and landmarks.

Runs offline on the embedded default data. Later stages of the project grow it into the full
registration demo (render, register, report).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from xrender.phantom import pelvis_phantom
from xrender.plot import plot_orthogonal_slices
from xrender.volume import Volume

__all__ = ["DemoResult", "run_demo", "save_figure_atomic"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    volume: Volume
    figure_path: Path
    seconds: float


def save_figure_atomic(figure, path: Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def run_demo(out_dir: Path, size: int = 128) -> DemoResult:
    """Voxelize the pelvis phantom at ``size³`` and write ``phantom_slices.png`` into ``out_dir``."""
    start = time.perf_counter()
    phantom = pelvis_phantom()
    volume = phantom.to_volume(size)
    seconds = time.perf_counter() - start
    figure = plot_orthogonal_slices(
        volume, phantom.landmarks, title=f"xrender pelvis phantom, {size}³ voxels, HU (window −400…1200)"
    )
    path = save_figure_atomic(figure, Path(out_dir) / "phantom_slices.png")
    return DemoResult(volume=volume, figure_path=path, seconds=seconds)
