r"""Simulated evaluation of registration methods: seeded trials, every method on the same trials, metrics.

A **trial** is a true pose, an initial pose and the X-ray seen from the true pose:

* true poses: the reference view (AP) moved about the isocentre by a draw of ``true_distribution``
  (default ``"prost-train"``: N(0, 9.5°) per angle, N(0, 22 mm) per axis);
* initial poses: each true pose moved by a draw of ``initial_distribution`` (default the paper's
  journal test distribution ``"prost-initial"``: N(0, 25°) per angle, N(0, 25 mm) in-plane,
  N(0, 60 mm) in depth);
* the X-ray: a DRR of the full volume at the true pose.

Every method registers every trial from the same initial pose; each trial has its own seed
(``seed · 1_000_003 + trial``) for its poses and its optimisers, so trial ``k`` is the same
whatever the number of trials, and its result does not depend on which process ran it — under
``torchrun`` the trials are dealt round-robin to the ranks and merged, and 1 or N processes give the
same table. Metrics per trial (`xrender.metrics`): mean 3-D TRE over the subject's points, rotation
and translation error, mean reprojection distance, success (mean TRE < 10 mm), seconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from recipes.registration.methods import MethodContext, build_method, with_seed
from recipes.training.pairs import Subject
from xrender.geometry import ConeBeam, get_pose_distribution, perturb, standard_pose
from xrender.metrics import (
    SUCCESS_TRE_MM,
    reprojection_distance,
    rotation_error,
    target_registration_error,
    translation_error,
)
from xrender.registration import RegistrationProblem, RegistrationResult, register
from xrender.render import render

__all__ = [
    "EvaluationConfig",
    "TrialRecord",
    "TrialSet",
    "bone_points",
    "evaluate",
    "initial_poses",
    "make_trials",
    "summarize",
    "trial_generator",
]

#: Seeds of trials are ``seed * SEED_STRIDE + trial``.
SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class EvaluationConfig:
    """How trials are drawn and judged.

    Attributes:
        trials: number of trials.
        seed: seeds the poses and every stochastic optimiser.
        true_distribution: pose distribution of the true poses about the reference view.
        initial_distribution: pose distribution of the initial poses about the true ones.
        view: the reference view (`xrender.geometry.standard_pose`).
        success_mm: success threshold on the mean TRE.
    """

    trials: int = 20
    seed: int = 0
    true_distribution: str = "prost-train"
    initial_distribution: str = "prost-initial"
    view: str = "ap"
    success_mm: float = SUCCESS_TRE_MM

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials: expected an int >= 1, got {self.trials!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")
        get_pose_distribution(self.true_distribution)
        get_pose_distribution(self.initial_distribution)
        if not (math.isfinite(self.success_mm) and self.success_mm > 0):
            raise ValueError(f"success_mm: expected a positive number, got {self.success_mm!r}")


@dataclass(frozen=True)
class TrialSet:
    """Seeded trials: true and initial camera-to-world poses ``(N, 4, 4)`` and X-rays ``(N, 1, H, W)``."""

    truth: Float[Tensor, "N 4 4"]
    initial: Float[Tensor, "N 4 4"]
    xrays: Float[Tensor, "N 1 H W"]

    def __len__(self) -> int:
        return self.truth.shape[0]


def make_trials(subject: Subject, geometry: ConeBeam, config: EvaluationConfig) -> TrialSet:
    """Draw ``config.trials`` trials for ``subject`` seen by ``geometry`` (see the module docstring)."""
    iso = subject.full.isocenter.to(torch.float64)
    reference = standard_pose(config.view, geometry.sid, iso)
    true_motion, initial_motion = [], []
    for trial in range(config.trials):  # one generator per trial: trial k is the same for any --trials > k
        draw = {"generator": trial_generator(config, trial), "dtype": torch.float64}
        true_motion.append(get_pose_distribution(config.true_distribution).sample(1, **draw))
        initial_motion.append(get_pose_distribution(config.initial_distribution).sample(1, **draw))
    n = config.trials
    truth = perturb(reference.expand(n, 4, 4), torch.cat(true_motion), iso)
    initial = perturb(truth, torch.cat(initial_motion), iso)
    with torch.no_grad():
        xrays = render(subject.full, geometry, truth).float()  # one batched call (render bounds its memory)
    return TrialSet(truth, initial, xrays)


def trial_generator(config: EvaluationConfig, trial: int) -> torch.Generator:
    """The generator of trial ``trial``'s pose draws, seeded ``config.seed · SEED_STRIDE + trial``."""
    return torch.Generator().manual_seed(config.seed * SEED_STRIDE + trial)


def initial_poses(
    truth: Float[Tensor, "N 4 4"], isocenter: Float[Tensor, "3"], config: EvaluationConfig
) -> Float[Tensor, "N 4 4"]:
    """Initial poses for given true poses (real X-rays): each moved by its trial's draw of ``initial_distribution``."""
    distribution = get_pose_distribution(config.initial_distribution)
    motion = [
        distribution.sample(1, generator=trial_generator(config, trial), dtype=torch.float64)
        for trial in range(truth.shape[0])
    ]
    return perturb(truth, torch.cat(motion), isocenter)


def bone_points(subject: Subject, n: int = 20, seed: int = 0) -> Float[Tensor, "n 3"]:
    """``n`` world points (mm) drawn uniformly, seeded, from the voxels of the moving (bone) volume.

    The default targets of the TRE for a CT without landmarks.

    Raises:
        ValueError: the moving volume has no non-zero voxel.
    """
    occupied = (subject.moving.data[0] > 0).nonzero()
    if occupied.shape[0] == 0:
        raise ValueError(f"{subject.name}: the moving volume has no bone voxel to place target points in")
    generator = torch.Generator().manual_seed(seed)
    chosen = occupied[torch.randperm(occupied.shape[0], generator=generator)[:n]]
    return subject.moving.voxel_to_world(chosen.flip(-1).to(torch.float64))


@dataclass(frozen=True)
class TrialRecord:
    """One method on one trial (plain data; see `xrender.metrics` for each metric's definition)."""

    method: str
    trial: int
    initial_mtre_mm: float
    mtre_mm: float
    rotation_error_deg: float
    translation_error_mm: float
    reprojection_mm: float
    success: bool
    seconds: float
    stage_seconds: dict[str, float]
    pose: list[list[float]]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def _record(
    method: str,
    trial: int,
    result: RegistrationResult,
    trials: TrialSet,
    points: Tensor,
    geometry: ConeBeam,
    isocenter: Tensor,
    config: EvaluationConfig,
) -> TrialRecord:
    truth, initial, pose = trials.truth[trial], trials.initial[trial], result.pose
    mtre = float(target_registration_error(pose, truth, points))
    stage_seconds: dict[str, float] = {}
    for stage in result.stages:
        stage_seconds[stage.name] = stage_seconds.get(stage.name, 0.0) + stage.seconds
    return TrialRecord(
        method=method,
        trial=trial,
        initial_mtre_mm=float(target_registration_error(initial, truth, points)),
        mtre_mm=mtre,
        rotation_error_deg=float(rotation_error(pose, truth)),
        translation_error_mm=float(translation_error(pose, truth, isocenter)),
        reprojection_mm=float(reprojection_distance(pose, truth, points, geometry)),
        success=mtre < config.success_mm,
        seconds=result.seconds,
        stage_seconds=stage_seconds,
        pose=pose.tolist(),
    )


def evaluate(
    subject: Subject,
    geometry: ConeBeam,
    methods: Sequence[str],
    context: MethodContext,
    config: EvaluationConfig,
    *,
    points: Float[Tensor, "N 3"] | None = None,
    moving: Any = None,
    trials: TrialSet | None = None,
    on_result: Callable[[str, int, RegistrationResult], None] | None = None,
    progress: bool = True,
) -> list[TrialRecord]:
    """Register every trial with every method; return the records of all trials (merged across ranks).

    Args:
        subject: the CT (full and moving volumes, landmarks).
        geometry: the C-arm of the simulated X-rays.
        methods: method names (`recipes.registration.methods.build_method`).
        context: settings and models; its seed is replaced per trial.
        config: trials and success threshold.
        points: TRE targets (world mm); default the subject's landmarks, else `bone_points`.
        moving: the volume a learned similarity sees (e.g. the bone at the network's training
            size); default ``subject.moving``.
        trials: pre-drawn trials (default `make_trials`).
        on_result: called with ``(method, trial, result)`` after each registration on this rank.
        progress: show a bar over registrations.

    Raises:
        ValueError: an unknown method, or a method whose model is missing (before any work).
    """
    for method in methods:
        build_method(method, context)  # fail fast on names and missing models
    trials = trials or make_trials(subject, geometry, config)
    if points is None:
        points = subject.landmarks if subject.landmarks is not None else bone_points(subject, seed=config.seed)
    points = points.to(torch.float64)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    mine = [i for i in range(len(trials)) if i % world == rank]
    isocenter = subject.full.isocenter.to(torch.float64)
    records: list[TrialRecord] = []
    bar = tqdm(total=len(mine) * len(methods), desc="registrations", disable=not progress or rank != 0)
    for trial in mine:
        problem = RegistrationProblem(subject.full, geometry, trials.xrays[trial : trial + 1], moving or subject.moving)
        for method in methods:
            stages = build_method(method, with_seed(context, config.seed * SEED_STRIDE + trial))
            result = register(problem, trials.initial[trial], stages)
            records.append(_record(method, trial, result, trials, points, geometry, isocenter, config))
            if on_result is not None:
                on_result(method, trial, result)
            bar.update(1)
            bar.set_postfix(method=method, mtre=f"{records[-1].mtre_mm:.1f}")
    bar.close()
    if world > 1:
        gathered: list[list[TrialRecord] | None] = [None] * world
        dist.all_gather_object(gathered, records)
        records = [r for part in gathered for r in (part or [])]
    order = {m: k for k, m in enumerate(methods)}
    return sorted(records, key=lambda r: (order[r.method], r.trial))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(records: Sequence[TrialRecord]) -> dict[str, dict[str, Any]]:
    """Per method: success rate, medians of every metric, and seconds.

    Keys per method: ``trials``, ``success_rate``, ``median_mtre_mm``, ``median_mtre_success_mm``
    (``None`` without successes), ``median_rotation_error_deg``, ``median_translation_error_mm``,
    ``median_reprojection_mm``, ``median_initial_mtre_mm``, ``median_seconds``, ``mean_seconds``,
    ``median_stage_seconds`` (per stage).
    """
    summary: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r.method for r in records):
        rows = [r for r in records if r.method == method]
        stages = dict.fromkeys(name for r in rows for name in r.stage_seconds)
        summary[method] = {
            "trials": len(rows),
            "success_rate": sum(r.success for r in rows) / len(rows),
            "median_mtre_mm": _median([r.mtre_mm for r in rows]),
            "median_mtre_success_mm": _median([r.mtre_mm for r in rows if r.success]),
            "median_rotation_error_deg": _median([r.rotation_error_deg for r in rows]),
            "median_translation_error_mm": _median([r.translation_error_mm for r in rows]),
            "median_reprojection_mm": _median([r.reprojection_mm for r in rows]),
            "median_initial_mtre_mm": _median([r.initial_mtre_mm for r in rows]),
            "median_seconds": _median([r.seconds for r in rows]),
            "mean_seconds": statistics.fmean(r.seconds for r in rows),
            "median_stage_seconds": {s: _median([r.stage_seconds[s] for r in rows]) for s in stages},
        }
    return summary
