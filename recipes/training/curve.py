"""Learning curves of ProST training: does the learned pose gradient point home, near and far?

During training, the main process scores the network every ``curve_every`` iterations on fixed
held-out pose pairs of the first subject (clean targets, seeds no training draw uses), in three
sets (`CURVE_SETS`):

* ``"training pairs"``: pairs drawn as the training draws them;
* ``"5°/10 mm"`` and ``"10°/20 mm"``: initial poses at exactly that offset from the true pose, a
  rotation of that angle about a random axis through the isocentre and a translation of that
  length in a random direction (`offset_motions`) — the gradient must be right close to the
  true pose too, where stage 2 takes over.

Each point holds the mean cosine between $g_\\text{net}$ and $g_\\text{geo}$ for the rotation
and the translation parts, per set, with the iteration, the training seconds (evaluation time
excluded) and the mean loss since the previous point. `LearningCurve` writes them as JSON and as
a figure.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from matplotlib.figure import Figure
from torch import Tensor

from xrender.geometry import perturb
from xrender.geometry.rotations import axis_angle_to_matrix
from xrender.geometry.se3 import make_pose
from xrender.io import atomic_output
from xrender.plot import save_figure
from xrender.recipes.training.pairs import Pair, PairSampler
from xrender.recipes.training.validation import part_cosines
from xrender.similarity.gradient_loss import similarity_value_and_gradient, target_gradient
from xrender.similarity.pose import PoseSimilarity

__all__ = ["CURVE_SETS", "CurvePoint", "LearningCurve", "gradient_cosines", "held_out_sets", "offset_motions"]

#: The held-out sets: name → ``None`` (pairs as in training) or ``(rotation °, translation mm)`` offsets.
CURVE_SETS: Mapping[str, tuple[float, float] | None] = {
    "training pairs": None,
    "5°/10 mm": (5.0, 10.0),
    "10°/20 mm": (10.0, 20.0),
}


def offset_motions(
    n: int, rotation_deg: float, translation_mm: float, generator: torch.Generator, dtype: torch.dtype
) -> Float[Tensor, "n 4 4"]:
    """``n`` volume motions of exactly ``rotation_deg`` about random axes and ``translation_mm`` in random directions.

    Axes and directions are uniform on the sphere (normalised Gaussian draws from ``generator``).
    """
    axes, directions = (torch.randn(n, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    axes = axes / axes.norm(dim=-1, keepdim=True)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    rotation = axis_angle_to_matrix(axes * math.radians(rotation_deg))
    return make_pose(rotation, directions * translation_mm).to(dtype)


def held_out_sets(sampler: PairSampler, n: int) -> dict[str, Pair]:
    """The `CURVE_SETS` pairs of ``sampler``'s first subject: ``n`` each, clean targets from ``sampler``'s generator."""
    sets = {}
    for name, offset in CURVE_SETS.items():
        pair = sampler.draw(n)
        if offset is not None:
            isocenter = sampler.subjects[pair.subject].full.isocenter
            motion = offset_motions(n, *offset, sampler.generator, pair.true_pose.dtype)
            pair = Pair(pair.subject, pair.true_pose, perturb(pair.true_pose, motion, isocenter), pair.fixed)
        sets[name] = pair
    return sets


def gradient_cosines(similarity: PoseSimilarity, pair: Pair) -> tuple[float, float]:
    """Mean rotation and translation cosines between the similarity's pose gradient and the geodesic one."""
    _, g_net = similarity_value_and_gradient(similarity, pair.initial_pose, pair.fixed, create_graph=False)
    cosine = part_cosines(g_net, target_gradient(pair.initial_pose, pair.true_pose, similarity.isocenter)).mean(0)
    return float(cosine[0]), float(cosine[1])


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation during training.

    Attributes:
        iteration: iterations done.
        seconds: training wall time so far, evaluations excluded.
        loss: mean training loss since the previous point (``None`` at iteration 0).
        cosines: set name → ``(rotation, translation)`` mean cosines.
    """

    iteration: int
    seconds: float
    loss: float | None
    cosines: dict[str, tuple[float, float]]


@dataclass
class LearningCurve:
    """The points of one training run (see the module docstring), written as JSON and PNG."""

    points: list[CurvePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"sets": [...], "points": [{iteration, seconds, loss, cosines}, ...]}``."""
        return {"sets": list(CURVE_SETS), "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearningCurve:
        """The curve `to_dict` wrote (e.g. from a checkpoint)."""
        points = [
            CurvePoint(p["iteration"], p["seconds"], p["loss"], {k: tuple(v) for k, v in p["cosines"].items()})
            for p in data.get("points", [])
        ]
        return cls(points)

    def plot(self, title: str | None = None) -> Figure:
        """Cosines (rotation, translation) per set against iterations (top) and seconds (bottom), and the loss."""
        fig = Figure(figsize=(11, 6), layout="constrained")
        axes = fig.subplots(2, 3)
        for row, key in enumerate(("iteration", "seconds")):
            x = [getattr(p, key) for p in self.points]
            for column, part in enumerate(("rotation", "translation")):
                ax = axes[row, column]
                for name in CURVE_SETS:
                    ax.plot(x, [p.cosines[name][column] for p in self.points], "o-", ms=3, label=name)
                ax.set_ylim(-0.2, 1.0)
                ax.axhline(0, color="0.6", lw=0.8)
                ax.set_title(f"{part} gradient cosine")
                ax.set_xlabel("iterations" if key == "iteration" else "training seconds")
                ax.grid(alpha=0.3)
            lossy = [(getattr(p, key), p.loss) for p in self.points if p.loss is not None]
            axes[row, 2].plot([a for a, _ in lossy], [b for _, b in lossy], "-", color="k")
            axes[row, 2].set_title("training loss")
            axes[row, 2].set_xlabel("iterations" if key == "iteration" else "training seconds")
            axes[row, 2].grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8, title="held-out pairs")
        if title:
            fig.suptitle(title)
        return fig

    def write(self, stem: str | os.PathLike, title: str | None = None) -> tuple[Path, Path]:
        """Write ``stem.json`` and ``stem.png`` atomically; return both paths."""
        stem = Path(stem)
        json_path, png_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".png")
        with atomic_output(json_path) as staging:
            staging.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        save_figure(self.plot(title), png_path)
        return json_path, png_path
