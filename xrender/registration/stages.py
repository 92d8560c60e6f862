"""Registration stages: each takes a pose and returns a better one, and stages chain.

* `IntensityStage` — an image similarity of DRRs (gradient NCC, multiscale NCC …) minimised by
  any `Optimizer` (CMA-ES, nevergrad, Adam, L-BFGS), coarse to fine over `Level` objects (detector
  binning, each with its own optimiser settings and optional pose prior.
* `LearnedDescentStage` — the ProST paper's stage 1: descent along the pose gradient of a learned
  ProST similarity (`xrender.registration.descent.pose_descent`, its options one
  `xrender.registration.DescentOptions`), with fixed decaying steps or a line search on the
  learned score.
* `LearnedSearchStage` — any `Optimizer` (CMA-ES …) on the learned ProST score itself.
* `RegressionStage` — a pose-regression network's prediction from the X-ray alone (the learning
  baseline, or an initialiser for the stages after it).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from jaxtyping import Float
from torch import Tensor

from xrender.registration.descent import DescentOptions, pose_descent
from xrender.registration.objective import PoseObjective, PosePrior
from xrender.registration.optimizers import Optimizer
from xrender.registration.problem import RegistrationProblem
from xrender.render.module import DRR
from xrender.render.options import RenderOptions
from xrender.similarity.pose import RenderedSimilarity
from xrender.similarity.prost import ProSTNetwork, ProSTSimilarity
from xrender.similarity.registry import get_similarity

__all__ = [
    "IntensityStage",
    "LearnedDescentStage",
    "LearnedSearchStage",
    "Level",
    "RegressionStage",
    "Stage",
    "StageResult",
]


@dataclass(frozen=True)
class StageResult:
    """What one stage did.

    Attributes:
        name: the stage's name.
        pose: the pose it returns, camera-to-world ``(4, 4)`` float64.
        trajectory: its estimate over iterations, ``(I, 4, 4)``.
        history: cost (lower is better) per iteration, in the stage's own units.
        evaluations: poses scored.
        seconds: wall time.
        stop_reason: why it stopped (for multi-level stages, the last level's reason).
    """

    name: str
    pose: Float[Tensor, "4 4"]
    trajectory: Float[Tensor, "I 4 4"]
    history: list[float]
    evaluations: int
    seconds: float
    stop_reason: str


class Stage(ABC):
    """One step of a registration: ``stage.run(problem, pose) -> StageResult``."""

    name: str

    @abstractmethod
    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        """Improve ``pose`` (camera-to-world) for ``problem``."""


@dataclass(frozen=True)
class Level:
    """One resolution level of an `IntensityStage`.

    Attributes:
        size: working detector size — the X-ray is binned by ``round(longer side / size)``
            (`xrender.image.working_factor`), so ``size=32`` works on about 32 pixels across whatever
            the C-arm (``None``: full resolution).
        optimizer: what searches at this level (from the previous level's result).
        prior: optional Gaussian prior about this level's starting pose.
    """

    size: int | None
    optimizer: Optimizer
    prior: PosePrior | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"Level.size: expected an int >= 1 or None, got {self.size!r}")
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"Level.optimizer: expected an Optimizer, got {type(self.optimizer).__name__}")


@dataclass(frozen=True)
class IntensityStage(Stage):
    """Minimise ``−similarity(DRR(pose), X-ray)`` level by level.

    Attributes:
        levels: coarse to fine.
        similarity: an image similarity name (`xrender.similarity.get_similarity`).
        similarity_options: its options (e.g. ``{"patch_size": 9}``).
        render_options: how the DRRs are rendered (`xrender.render.RenderOptions`).
        name: for reports.
        max_batch: the most poses rendered in one call.
    """

    levels: tuple[Level, ...]
    similarity: str = "gradient-ncc"
    similarity_options: dict[str, Any] = field(default_factory=dict)
    render_options: RenderOptions = RenderOptions()
    name: str = "intensity"
    max_batch: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        if not self.levels:
            raise ValueError("IntensityStage.levels: expected at least one Level")
        get_similarity(self.similarity, **self.similarity_options)  # validates name and options now

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        pose = pose.detach().to(torch.float64)
        trajectory, history, evaluations, reason = [pose[None]], [], 0, "iterations"
        for level in self.levels:
            geometry, xray = problem.at_size(level.size)
            drr = DRR(problem.volume, geometry, options=self.render_options)
            similarity = RenderedSimilarity(drr, get_similarity(self.similarity, **self.similarity_options))
            objective = PoseObjective(similarity, xray, pose, prior=level.prior, max_batch=self.max_batch)
            result = level.optimizer.minimize(objective, progress=progress)
            with torch.no_grad():
                trajectory.append(objective.poses(result.trajectory[1:].to(xray.device)).cpu())
                pose = objective.poses(result.params[None].to(xray.device))[0].cpu()
            history += result.history
            evaluations += result.evaluations
            reason = result.stop_reason
        return StageResult(
            self.name, pose, torch.cat(trajectory), history, evaluations, time.perf_counter() - start, reason
        )


@dataclass(frozen=True)
class LearnedDescentStage(Stage):
    """The ProST paper's stage 1: descend a learned similarity's pose gradient (`pose_descent`).

    The X-ray is binned to the network's image size; the network sees ``problem.moving_volume``.

    Attributes:
        network: a trained `ProSTNetwork`.
        descent: the steps and the stop rule of `pose_descent`.
        render_options: how the feature volume is projected (`xrender.render.RenderOptions`;
            e.g. its sample spacing ``step_mm``).
        name: for reports.
    """

    network: ProSTNetwork
    descent: DescentOptions = DescentOptions()
    render_options: RenderOptions = RenderOptions()
    name: str = "prost"

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        geometry, xray = problem.binned_to(self.network.image_size[0])  # ProSTSimilarity checks the width
        similarity = ProSTSimilarity(problem.moving_volume, geometry, self.network, options=self.render_options).eval()
        result = pose_descent(similarity, xray, pose.detach().to(torch.float64)[None], self.descent, progress=progress)
        taken = int(result.steps_taken[0])
        reason = "plateau" if taken < self.descent.steps else "iterations"
        history = (-result.scores[:, 0]).tolist()
        return StageResult(
            self.name,
            result.pose[0],
            result.trajectory[:, 0],
            history,
            result.evaluations,
            time.perf_counter() - start,
            reason,
        )


@dataclass(frozen=True)
class LearnedSearchStage(Stage):
    """Minimise minus the learned ProST score with any `Optimizer` (e.g. CMA-ES), at the network's image size.

    The score's values are searched, not its gradient: a global optimiser can use a learned
    similarity whose gradient is right only in parts of the space.

    Attributes:
        network: a trained `ProSTNetwork`.
        optimizer: the search (from the stage's starting pose).
        prior: optional Gaussian pose prior about the starting pose.
        render_options: how the feature volume is projected (`xrender.render.RenderOptions`;
            e.g. its sample spacing ``step_mm``).
        max_batch: the most poses scored in one call.
        name: for reports.
    """

    network: ProSTNetwork
    optimizer: Optimizer
    prior: PosePrior | None = None
    render_options: RenderOptions = RenderOptions()
    max_batch: int = 64
    name: str = "prost-search"

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        geometry, xray = problem.binned_to(self.network.image_size[0])
        similarity = ProSTSimilarity(problem.moving_volume, geometry, self.network, options=self.render_options).eval()
        pose = pose.detach().to(torch.float64)
        objective = PoseObjective(similarity, xray, pose, prior=self.prior, max_batch=self.max_batch)
        result = self.optimizer.minimize(objective, progress=progress)
        with torch.no_grad():
            trajectory = objective.poses(result.trajectory.to(xray.device)).cpu()
            final = objective.poses(result.params[None].to(xray.device))[0].cpu()
        return StageResult(
            self.name,
            final,
            torch.cat([pose[None].cpu(), trajectory[1:]]),
            result.history,
            result.evaluations,
            time.perf_counter() - start,
            result.stop_reason,
        )


class PoseRegressorLike(Protocol):
    """What `RegressionStage` needs: an input size and a pose prediction."""

    image_size: int

    def predict_pose(self, image: Float[Tensor, "B 1 H W"]) -> Float[Tensor, "B 4 4"]: ...


@dataclass(frozen=True)
class RegressionStage(Stage):
    """Replace the pose by a pose-regression network's prediction from the X-ray (binned to its input size).

    Attributes:
        regressor: e.g. `xrender.registration.regression.PoseRegressor`.
        name: for reports.
    """

    regressor: PoseRegressorLike
    name: str = "regression"

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        size = self.regressor.image_size
        _, xray = problem.binned_to(size)
        with torch.no_grad():
            predicted = self.regressor.predict_pose(xray)[0].to(torch.float64).cpu()
        trajectory = torch.stack([pose.detach().to(torch.float64).cpu(), predicted])
        return StageResult(self.name, predicted, trajectory, [], 1, time.perf_counter() - start, "prediction")
