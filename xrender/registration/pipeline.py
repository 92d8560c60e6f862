"""`register`: run stages one after another from an initial pose.

The ProST paper's method is two stages — `LearnedDescentStage` then an `IntensityStage` with
CMA-ES on gradient NCC — and its baselines are one (`xrender.recipes.registration` names them all).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.registration.problem import RegistrationProblem
from xrender.registration.stages import Stage, StageResult, _run_stages

__all__ = ["RegistrationResult", "register"]


@dataclass(frozen=True)
class RegistrationResult:
    """The outcome of `register`.

    Attributes:
        pose: the final camera-to-world pose ``(4, 4)`` float64.
        initial: the pose it started from.
        stages: each stage's result, in order.
        seconds: total wall time.
    """

    pose: Float[Tensor, "4 4"]
    initial: Float[Tensor, "4 4"]
    stages: tuple[StageResult, ...]
    seconds: float

    @property
    def trajectory(self) -> Float[Tensor, "I 4 4"]:
        """Every stage's trajectory, concatenated (the start first)."""
        return torch.cat([self.initial[None], *(s.trajectory for s in self.stages)])


def register(
    problem: RegistrationProblem,
    initial: Float[Tensor, "4 4"],
    stages: Sequence[Stage],
    *,
    progress: bool = False,
) -> RegistrationResult:
    """Run ``stages`` in order, each from the previous one's pose.

    Args:
        problem: the volume, C-arm and X-ray.
        initial: the starting camera-to-world pose.
        stages: at least one `Stage`.
        progress: show tqdm bars.

    Raises:
        ValueError: a malformed initial pose or no stages.
        TypeError: something in ``stages`` is not a `Stage`.
    """
    check_finite(check_shape(initial, "4 4", "initial"), "initial")
    stages = tuple(stages)
    if not stages:
        raise ValueError("stages: expected at least one registration stage")
    for stage in stages:
        if not isinstance(stage, Stage):
            raise TypeError(f"stages: expected Stage objects, got {type(stage).__name__}")
    start = time.perf_counter()
    initial = initial.detach().to(torch.float64).cpu()
    results = _run_stages(problem, initial, stages, progress=progress)
    return RegistrationResult(results[-1].pose, initial, tuple(results), time.perf_counter() - start)
