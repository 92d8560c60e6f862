"""Registration stages: each takes a pose and returns a better one, and stages chain.

* `IntensityStage` — an image similarity of DRRs (gradient NCC, multiscale NCC …) minimised by
  any `Optimizer` (CMA-ES, nevergrad, Adam, L-BFGS), coarse to fine over `Level` objects (detector
  binning, each with its own optimiser settings and optional pose prior.
* `LearnedDescentStage` — the ProST paper's stage 1: descent along the pose gradient of a learned
  ProST similarity (`xrender.registration.descent.pose_descent`, its options one
  `xrender.registration.DescentOptions`), with fixed decaying steps or a line search on the
  learned score.
* `MultiStartStage` — the learned descent from many turned copies of the pose (beyond the
  learned gradient's reach in rotation), then refinement of its few best ends.
* `LearnedSearchStage` — any `Optimizer` (CMA-ES …) on the learned ProST score itself.
* `RegressionStage` — a pose-regression network's prediction from the X-ray alone (the learning
  baseline, or an initialiser for the stages after it).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender.geometry.perturbation import perturb
from xrender.geometry.rotations import cube_rotations
from xrender.geometry.se3 import make_pose, pose_rotation, so3_angle
from xrender.registration.descent import DescentOptions, DescentResult, pose_descent
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
    "MultiStartStage",
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


def _run_stages(
    problem: RegistrationProblem, pose: Float[Tensor, "4 4"], stages: Sequence[Stage], *, progress: bool = False
) -> list[StageResult]:
    """Run ``stages`` in order, each from the pose the one before returned (`xrender.registration.register`'s loop)."""
    results: list[StageResult] = []
    for stage in stages:
        results.append(stage.run(problem, pose, progress=progress))
        pose = results[-1].pose
    return results


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

    def descend(
        self, problem: RegistrationProblem, poses: Float[Tensor, "B 4 4"], *, progress: bool = False
    ) -> DescentResult:
        """Descend from each of ``poses`` at once (`pose_descent` on a batch); `run` is one pose of it."""
        geometry, xray = problem.binned_to(self.network.image_size[0])  # ProSTSimilarity checks the width
        similarity = ProSTSimilarity(problem.moving_volume, geometry, self.network, options=self.render_options).eval()
        fixed = xray.expand(len(poses), *xray.shape[1:])
        return pose_descent(similarity, fixed, poses.detach().to(torch.float64), self.descent, progress=progress)

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        result = self.descend(problem, pose[None], progress=progress)
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


@dataclass(frozen=True, eq=False)  # compared by identity: its rotations are a tensor
class MultiStartStage(Stage):
    """Descend a learned similarity from many turned copies of the pose, refine the best few ends, keep the best.

    A learned similarity's pose gradient points home only within its reach in rotation (about 60°
    for the shipped ProST models, `benchmarks/prost_reach.py`). Turned about the isocentre by each
    of ``rotations`` — by default the 24 rotations of the cube (`xrender.geometry.cube_rotations`),
    one of which lies within 62.8° of any orientation — the incoming pose gives one start within
    that reach of any true pose.

    1. **Descend**: ``explore`` moves every start at once (`LearnedDescentStage.descend`).
    2. **Shortlist**: the ends are ranked twice: by ``similarity`` between their DRRs, ``size``
       pixels across, and the X-ray, and by the learned score the descent ended on. The best
       ``keep`` ends by ``similarity`` and the best ``keep_learned`` by the learned score are kept,
       each more than ``separation_deg`` from every end kept before it, and so is the end of the
       first rotation's start (the identity of `cube_rotations`: the incoming pose, the likeliest
       place to be).
    3. **Refine**: the ``refine`` stages run from each kept end, and the one whose final pose scores
       best in ``similarity`` at ``size`` is returned.

    The shortlist's scores are not trusted to choose alone: two ends that mirror each other (a
    left-right flip of a nearly symmetric anatomy) can score alike at their unrefined poses,
    whereas after refinement the true one fits the X-ray clearly better.

    The result's ``trajectory`` and ``history`` are those of the returned end: its start, its
    descent (cost: minus the learned score) and its refinement (each stage's own units).

    Attributes:
        explore: the learned descent run from every start.
        refine: stages run from each kept end (none: the best end by ``similarity`` is returned).
        rotations: ``(N, 3, 3)`` turns applied to the incoming pose about the isocentre, in the
            isocentre frame of `xrender.geometry.perturb` (the identity first).
        keep: how many ends the shortlist takes by ``similarity``.
        keep_learned: how many more it takes by the learned score. The two rankings fail on
            different ends: gradient NCC of an unrefined end favours near-mirrors, the learned
            score favours ends turned home but far off in depth (`benchmarks/README.md`, "Many
            starts as a stage").
        separation_deg: the least rotation between two ends of the shortlist (degrees).
        similarity: the image similarity that ranks ends and results (`xrender.similarity.get_similarity`).
        similarity_options: its options.
        size: detector size (pixels across) of the DRRs it scores (``None``: full resolution).
        render_options: how those DRRs are rendered.
        name: for reports.

    Raises:
        ValueError: ``rotations`` that are not ``(N, 3, 3)`` rotation matrices, a negative
            ``keep``, ``keep_learned`` or ``separation_deg``, or an unknown similarity.
        TypeError: ``explore`` that is not a `LearnedDescentStage` or ``refine`` holding a non-stage.
    """

    explore: LearnedDescentStage
    refine: tuple[Stage, ...] = ()
    rotations: Float[Tensor, "N 3 3"] = field(default_factory=cube_rotations)
    keep: int = 1
    keep_learned: int = 1
    separation_deg: float = 15.0
    similarity: str = "gradient-ncc"
    similarity_options: dict[str, Any] = field(default_factory=dict)
    size: int | None = 64
    render_options: RenderOptions = RenderOptions()
    name: str = "multistart"

    def __post_init__(self) -> None:
        object.__setattr__(self, "refine", tuple(self.refine))
        if not isinstance(self.explore, LearnedDescentStage):
            kind = type(self.explore).__name__
            raise TypeError(f"MultiStartStage.explore: expected a LearnedDescentStage, got {kind}")
        for stage in self.refine:
            if not isinstance(stage, Stage):
                raise TypeError(f"MultiStartStage.refine: expected Stage objects, got {type(stage).__name__}")
        rotations = check_shape(torch.as_tensor(self.rotations), "N 3 3", "MultiStartStage.rotations").to(torch.float64)
        eye = torch.eye(3, dtype=torch.float64)
        if len(rotations) == 0 or not (
            torch.allclose(rotations.transpose(-1, -2) @ rotations, eye.expand_as(rotations), atol=1e-6)
            and torch.allclose(torch.linalg.det(rotations), torch.ones(len(rotations), dtype=torch.float64), atol=1e-6)
        ):
            raise ValueError("MultiStartStage.rotations: expected one or more rotation matrices (orthonormal, det +1)")
        object.__setattr__(self, "rotations", rotations.cpu())
        for option in ("keep", "keep_learned"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"MultiStartStage.{option}: expected an int >= 0, got {value!r}")
        if not (math.isfinite(self.separation_deg) and self.separation_deg >= 0):
            raise ValueError(f"MultiStartStage.separation_deg: expected a number >= 0, got {self.separation_deg!r}")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"MultiStartStage.size: expected an int >= 1 or None, got {self.size!r}")
        get_similarity(self.similarity, **self.similarity_options)  # validates name and options now

    def _shortlist(
        self, ends: Float[Tensor, "N 4 4"], scores: Float[Tensor, " N"], learned: Float[Tensor, " N"]
    ) -> list[int]:
        """Indices of the kept ends: ``keep`` by score, then ``keep_learned`` by learned score, then the first start's.

        Each ranking passes over ends within ``separation_deg`` of one kept before; an end that
        the first ranking kept counts towards the second's quota when the second reaches it."""
        rotations = pose_rotation(ends)
        apart = (so3_angle(rotations[:, None], rotations[None]).rad2deg() > self.separation_deg).tolist()
        kept: list[int] = []
        for ranking, quota in ((scores, self.keep), (learned, self.keep_learned)):
            taken = 0
            for index in torch.argsort(ranking, descending=True, stable=True).tolist():
                if taken == quota:
                    break
                if index in kept:
                    taken += 1
                elif all(apart[index][other] for other in kept):
                    kept.append(index)
                    taken += 1
        return kept if 0 in kept else [*kept, 0]

    def starts(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"]) -> Float[Tensor, "N 4 4"]:
        """``pose`` turned about the isocentre by each of ``rotations`` (float64, CPU; the first is ``pose``)."""
        pose = pose.detach().to(torch.float64).cpu()
        turns = make_pose(self.rotations, torch.zeros(len(self.rotations), 3, dtype=torch.float64))
        return perturb(pose.expand(len(turns), 4, 4), turns, problem.isocenter.detach().to(torch.float64).cpu())

    def run(self, problem: RegistrationProblem, pose: Float[Tensor, "4 4"], *, progress: bool = False) -> StageResult:
        start = time.perf_counter()
        starts = self.starts(problem, pose)
        descent = self.explore.descend(problem, starts, progress=progress)
        geometry, xray = problem.at_size(self.size)
        drr = DRR(problem.volume, geometry, options=self.render_options)
        similarity = RenderedSimilarity(drr, get_similarity(self.similarity, **self.similarity_options))
        with torch.no_grad():
            scores = similarity(descent.pose.to(xray.device), xray.expand(len(starts), *xray.shape[1:])).cpu()
        kept = self._shortlist(descent.pose.cpu(), scores, descent.scores[-1].cpu())
        runs = [_run_stages(problem, descent.pose[index].cpu(), self.refine, progress=progress) for index in kept]
        finals = torch.stack([run[-1].pose if run else descent.pose[index].cpu() for run, index in zip(runs, kept)])
        with torch.no_grad():
            final_scores = similarity(finals.to(xray.device), xray.expand(len(kept), *xray.shape[1:])).cpu()
        best = int(final_scores.argmax())
        index, run = kept[best], runs[best]
        trajectory = [starts[index][None].cpu(), descent.trajectory[1:, index].cpu()]
        history = (-descent.scores[:, index]).tolist()
        evaluations = descent.evaluations * len(starts) + len(starts) + len(kept)
        trajectory += [stage.trajectory[1:] for stage in run]
        history += [cost for stage in run for cost in stage.history]
        evaluations += sum(stage.evaluations for each in runs for stage in each)
        return StageResult(
            self.name,
            finals[best],
            torch.cat(trajectory),
            history,
            evaluations,
            time.perf_counter() - start,
            f"best of {len(kept)} refined ends" if self.refine else f"best of {len(starts)} ends",
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
