r"""Simulated evaluation of registration methods: seeded trials, every method on the same trials, metrics.

A **trial** is a true pose, an initial pose and the X-ray seen from the true pose:

* true poses: the reference view (AP) moved about the isocentre by a draw of ``true_distribution``
  (default ``"prost-train"``: N(0, 9.5°) per angle, N(0, 22 mm) per axis);
* initial poses: each true pose moved by a draw of ``initial_distribution`` (default the paper's
  journal test distribution ``"prost-initial"``: N(0, 25°) per angle, N(0, 25 mm) in-plane,
  N(0, 60 mm) in depth; ``"wide"`` doubles every σ);
* the X-ray: made by the ``targets`` model (`xrender.recipes.registration.targets.TARGETS`):
  the DRR of the full volume at the true pose (``"drr"``, the registration's own forward model),
  or a realistic simulation (``"realistic"``: polyenergetic, scatter, noise; kVp and dose drawn
  per trial).

**Stratified trials** (``EvaluationConfig.stratify``, bin edges of the initial mean TRE): trial ``k``
draws a target initial mean TRE uniformly inside bin ``k mod n_bins``, then an offset *direction*
from ``initial_distribution``, and scales that motion — its se(3) log, about the isocentre — by
bisection until the mean TRE over the target points equals the target (a direction that cannot
reach it within a half-turn is drawn again). Every bin then gets its share of trials.

Every method registers every trial from the same initial pose; each trial has its own seed
(`trial_seed`: ``numpy.random.SeedSequence((seed, trial))``, 31 bits) for its poses and its
optimisers, so trial ``k`` is the same whatever the number of trials, and its result does not
depend on which process ran it — under ``torchrun`` the trials are dealt round-robin to the ranks
and merged, and 1 or N processes give the same table. Metrics per trial (`xrender.metrics`): mean
3-D TRE over the subject's points, rotation and translation error, mean reprojection distance,
success (mean TRE < 10 mm), seconds.

**Equal time** (``EvaluationConfig.equal_time``, a reference method): in each trial the reference
runs first, and every search-only method (`xrender.recipes.registration.methods.spends_time_budget`) gets
its wall time as a budget, spent on IPOP restarts of its first level (`register_within`). Records
then depend on the machine's speed, like the seconds.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xrender.geometry import ConeBeam, get_pose_distribution, perturb, se3_exp, se3_log, standard_pose
from xrender.metrics import (
    SUCCESS_TRE_MM,
    depth_error,
    reprojection_distance,
    rotation_error,
    target_registration_error,
    translation_error,
)
from xrender.recipes.registration.methods import MethodContext, build_method, spends_time_budget, with_seed
from xrender.recipes.registration.targets import TARGETS
from xrender.registration import CMAES, IntensityStage, RegistrationProblem, RegistrationResult, Stage, register
from xrender.subject import Subject

__all__ = [
    "EvaluationConfig",
    "TrialRecord",
    "TrialSet",
    "bone_points",
    "check_equal_time",
    "evaluate",
    "initial_poses",
    "make_trials",
    "register_within",
    "summarize",
    "target_points",
    "trial_generator",
    "trial_seed",
]

#: How many offset directions a stratified trial may draw before giving up on its target.
MAX_DIRECTION_DRAWS = 100


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
        stratify: bin edges (mm) of the initial mean TRE to stratify the trials over, or ``None``
            for plain draws of ``initial_distribution`` (see the module docstring).
        equal_time: a reference method whose wall time per trial every search-only method gets
            as its budget, or ``None``.
        targets: how the X-rays are made, a name in
            `xrender.recipes.registration.targets.TARGETS` (``"drr"`` or ``"realistic"``).
    """

    trials: int = 20
    seed: int = 0
    true_distribution: str = "prost-train"
    initial_distribution: str = "prost-initial"
    view: str = "ap"
    success_mm: float = SUCCESS_TRE_MM
    stratify: tuple[float, ...] | None = None
    equal_time: str | None = None
    targets: str = "drr"

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials: expected an int >= 1, got {self.trials!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")
        get_pose_distribution(self.true_distribution)
        get_pose_distribution(self.initial_distribution)
        if not (math.isfinite(self.success_mm) and self.success_mm > 0):
            raise ValueError(f"success_mm: expected a positive number, got {self.success_mm!r}")
        if self.stratify is not None:
            try:
                edges = tuple(float(e) for e in self.stratify)
            except (TypeError, ValueError):
                edges = ()
            if len(edges) < 2 or not all(math.isfinite(e) for e in edges) or edges[0] < 0:
                raise ValueError(
                    f"stratify (--stratify): expected two or more finite bin edges >= 0 mm, got {self.stratify!r}"
                )
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"stratify (--stratify): expected increasing bin edges (mm), got {self.stratify!r}")
            object.__setattr__(self, "stratify", edges)
        if self.equal_time is not None and not (isinstance(self.equal_time, str) and self.equal_time.strip()):
            raise ValueError(f"equal_time (--equal-time): expected a method name or None, got {self.equal_time!r}")
        if self.targets not in TARGETS:
            raise ValueError(
                f"targets (--targets): unknown {self.targets!r}; expected one of {', '.join(TARGETS.names())}"
            )


@dataclass(frozen=True)
class TrialSet:
    """Seeded trials: true and initial camera-to-world poses ``(N, 4, 4)`` and X-rays ``(N, 1, H, W)``.

    ``drawn`` holds, per trial, what the target model drew for its X-ray (e.g. ``kvp`` and
    ``dose``); empty dicts for DRR targets, and empty for real X-rays.
    """

    truth: Float[Tensor, "N 4 4"]
    initial: Float[Tensor, "N 4 4"]
    xrays: Float[Tensor, "N 1 H W"]
    drawn: tuple[dict[str, Any], ...] = ()

    def __len__(self) -> int:
        return self.truth.shape[0]


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of a run seeded ``seed``: 31 bits of ``numpy.random.SeedSequence((seed, trial))``.

    Any ``seed >= 0`` works, however large. The value is below ``2**31``, so it and the ``+ 1`` of a
    second level seed torch generators, ``cma`` and nevergrad alike (all take seeds below ``2**32``).
    """
    return int(np.random.SeedSequence((seed, trial)).generate_state(1)[0]) >> 1


def trial_generator(config: EvaluationConfig, trial: int) -> torch.Generator:
    """The generator of trial ``trial``'s pose draws, seeded `trial_seed` ``(config.seed, trial)``."""
    return torch.Generator().manual_seed(trial_seed(config.seed, trial))


def target_points(subject: Subject, config: EvaluationConfig) -> Float[Tensor, "N 3"]:
    """The TRE targets (world mm, float64): the subject's landmarks, else 20 `bone_points` seeded ``config.seed``."""
    points = subject.landmarks if subject.landmarks is not None else bone_points(subject, seed=config.seed)
    return points.to(torch.float64)


def make_trials(
    subject: Subject, geometry: ConeBeam, config: EvaluationConfig, points: Float[Tensor, "N 3"] | None = None
) -> TrialSet:
    """Draw ``config.trials`` trials for ``subject`` seen by ``geometry`` (see the module docstring).

    Args:
        subject: the CT.
        geometry: the C-arm of the simulated X-rays.
        config: the trial settings.
        points: the TRE targets a stratified draw aims at (default `target_points`).
    """
    points = target_points(subject, config) if points is None else points.to(torch.float64)
    iso = subject.full.isocenter.to(torch.float64)
    reference = standard_pose(config.view, geometry.sid, iso)
    generators = [trial_generator(config, k) for k in range(config.trials)]  # trial k: the same for any --trials > k
    distribution = get_pose_distribution(config.true_distribution)
    true_motion = torch.cat([distribution.sample(1, generator=g, dtype=torch.float64) for g in generators])
    truth = perturb(reference.expand(config.trials, 4, 4), true_motion, iso)
    initial = _initial_poses(truth, iso, config, points, generators)
    xrays, drawn = TARGETS.get(config.targets).make(subject, geometry, truth, config.seed)
    return TrialSet(truth, initial, xrays, tuple(drawn))


def initial_poses(
    truth: Float[Tensor, "N 4 4"],
    isocenter: Float[Tensor, "3"],
    config: EvaluationConfig,
    points: Float[Tensor, "P 3"] | None = None,
) -> Float[Tensor, "N 4 4"]:
    """Initial poses for given true poses (real X-rays): each moved by its trial's draw (plain or stratified).

    Raises:
        ValueError: a stratified ``config`` without the target ``points``.
    """
    generators = [trial_generator(config, k) for k in range(truth.shape[0])]
    return _initial_poses(truth, isocenter.to(torch.float64), config, points, generators)


def _initial_poses(
    truth: Tensor, iso: Tensor, config: EvaluationConfig, points: Tensor | None, generators: list[torch.Generator]
) -> Tensor:
    """Each trial's initial pose, drawn from its generator (after whatever the trial drew before)."""
    distribution = get_pose_distribution(config.initial_distribution)
    if config.stratify is None:
        motion = torch.cat([distribution.sample(1, generator=g, dtype=torch.float64) for g in generators])
        return perturb(truth, motion, iso)
    if points is None:
        raise ValueError("initial_poses: a stratified draw (stratify, --stratify) needs the TRE target points")
    edges = config.stratify
    twists, limits, targets = [], [], []
    for k, generator in enumerate(generators):
        low, high = edges[k % (len(edges) - 1)], edges[k % (len(edges) - 1) + 1]
        target = low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))
        for _ in range(MAX_DIRECTION_DRAWS):
            twist = se3_log(distribution.sample(1, generator=generator, dtype=torch.float64))[0]
            angle, shift = float(twist[:3].norm()), float(twist[3:].norm())
            # scale up to a half-turn; a pure translation moves every point by its length
            limit = math.pi / angle if angle > 0 else 2 * target / max(shift, 1e-12)
            if float(_offset_tre(truth[k : k + 1], iso, points, limit * twist[None])[0]) >= target:
                break
        else:
            raise ValueError(
                f"stratify: trial {k} drew {MAX_DIRECTION_DRAWS} offset directions from "
                f"{config.initial_distribution!r} and none reaches an initial mean TRE of {target:.1f} mm "
                f"within a half-turn; lower the largest bin edge ({high:g} mm) or choose a wider "
                "--initial-poses distribution"
            )
        twists.append(twist)
        limits.append(limit)
        targets.append(target)
    twist = torch.stack(twists)
    limit, target = torch.tensor(limits, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)
    scale = _bisect_scale(truth, iso, points, twist, limit, target)
    return perturb(truth, se3_exp(scale[:, None] * twist), iso)


def _offset_tre(truth: Tensor, iso: Tensor, points: Tensor, twist: Tensor) -> Tensor:
    """Mean TRE (mm) of the initial poses ``perturb(truth, exp(twist), iso)``, one per twist ``(N, 6)``."""
    return target_registration_error(perturb(truth, se3_exp(twist), iso), truth, points)


def _bisect_scale(truth: Tensor, iso: Tensor, points: Tensor, twist: Tensor, high: Tensor, target: Tensor) -> Tensor:
    """Scales ``s`` in ``[0, high]`` with ``_offset_tre(s · twist) = target`` (all trials at once, 60 halvings).

    ``_offset_tre`` is 0 at ``s = 0`` and at least the target at ``high``, so bisection keeps a crossing
    between its ends.
    """
    low = torch.zeros_like(high)
    for _ in range(60):
        middle = (low + high) / 2
        short = _offset_tre(truth, iso, points, middle[:, None] * twist) < target
        low, high = torch.where(short, middle, low), torch.where(short, high, middle)
    return high


def bone_points(subject: Subject, n: int = 20, seed: int = 0) -> Float[Tensor, "n 3"]:
    """``n`` world points (mm) drawn uniformly, seeded, from the voxels of the moving (bone) volume.

    The default targets of the TRE for a CT without landmarks.

    Raises:
        ValueError: the moving volume has no non-zero voxel.
    """
    occupied = (subject.moving.data[0] > 0).nonzero()
    if occupied.shape[0] == 0:
        raise ValueError(f"{subject.name}: the moving volume has no bone voxel to place target points in")
    generator = torch.Generator().manual_seed(seed % 2**64)  # torch takes 64-bit seeds; any int works
    chosen = occupied[torch.randperm(occupied.shape[0], generator=generator)[:n]]
    return subject.moving.voxel_to_world(chosen.flip(-1).to(torch.float64))


@dataclass(frozen=True)
class TrialRecord:
    """One method on one trial (plain data; see `xrender.metrics` for each metric's definition).

    ``budget_seconds`` is the wall time the method was given under equal time (``None``: no budget);
    ``target`` what the target model drew for the trial's X-ray (`TrialSet.drawn`); ``depth_error_mm``
    the signed `xrender.metrics.depth_error` of the final pose; ``stages`` where each stage run left
    the pose, in order (``stage``, ``mtre_mm``, ``rotation_error_deg``, ``translation_error_mm``,
    ``depth_error_mm``): what a first stage hands over to the next.
    """

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
    budget_seconds: float | None = None
    target: dict[str, Any] = field(default_factory=dict)
    depth_error_mm: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)

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
    budget_seconds: float | None,
) -> TrialRecord:
    truth, initial, pose = trials.truth[trial], trials.initial[trial], result.pose
    final = _pose_errors(pose, truth, points, isocenter)
    stage_seconds: dict[str, float] = {}
    for stage in result.stages:
        stage_seconds[stage.name] = stage_seconds.get(stage.name, 0.0) + stage.seconds
    return TrialRecord(
        method=method,
        trial=trial,
        initial_mtre_mm=float(target_registration_error(initial, truth, points)),
        mtre_mm=final["mtre_mm"],
        rotation_error_deg=final["rotation_error_deg"],
        translation_error_mm=final["translation_error_mm"],
        reprojection_mm=float(reprojection_distance(pose, truth, points, geometry)),
        success=final["mtre_mm"] < config.success_mm,
        seconds=result.seconds,
        stage_seconds=stage_seconds,
        pose=pose.tolist(),
        budget_seconds=budget_seconds,
        target=dict(trials.drawn[trial]) if trials.drawn else {},
        depth_error_mm=final["depth_error_mm"],
        stages=[{"stage": stage.name, **_pose_errors(stage.pose, truth, points, isocenter)} for stage in result.stages],
    )


#: The errors of a pose that the records keep, by key: ``error(pose, truth, points, isocenter)``.
_POSE_ERRORS: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "mtre_mm": lambda pose, truth, points, isocenter: target_registration_error(pose, truth, points),
    "rotation_error_deg": lambda pose, truth, points, isocenter: rotation_error(pose, truth),
    "translation_error_mm": lambda pose, truth, points, isocenter: translation_error(pose, truth, isocenter),
    "depth_error_mm": lambda pose, truth, points, isocenter: depth_error(pose, truth, isocenter),
}


def _pose_errors(pose: Tensor, truth: Tensor, points: Tensor, isocenter: Tensor) -> dict[str, float]:
    """Where ``pose`` is: its mean TRE, rotation, translation and signed depth errors (`_POSE_ERRORS`)."""
    return {key: float(error(pose, truth, points, isocenter)) for key, error in _POSE_ERRORS.items()}


def check_equal_time(config: EvaluationConfig, methods: Sequence[str]) -> None:
    """Check that ``config.equal_time``, if set, is one of ``methods``.

    Raises:
        ValueError: it is not (the message lists the methods).
    """
    if config.equal_time is not None and config.equal_time not in methods:
        raise ValueError(
            f"--equal-time (equal_time): {config.equal_time!r} is not one of the methods ({', '.join(methods)}); "
            "name the reference method among --methods"
        )


def register_within(
    problem: RegistrationProblem,
    initial: Float[Tensor, "4 4"],
    stages: Sequence[Stage],
    budget_seconds: float,
    *,
    restarts: int = 8,
) -> RegistrationResult:
    """Register with ``stages``, then spend what is left of ``budget_seconds`` on IPOP restarts of the first level.

    1. The stages run as `register` runs them, with the first stage's first level (the *head*)
       split from the rest (the *tail*), which times the tail.
    2. If what is left of the budget, less the tail's time, holds at least one generation of twice
       the head's population, the head runs again from ``initial`` as IPOP-CMA-ES
       (`xrender.registration.CMAES` runs ``restarts0 + 1 …`` up to ``restarts`` more, population
       doubled each run, its own seeds) within that time.
    3. If it found a lower cost than the head, the tail runs again from its pose and gives the
       result; otherwise the first result stands.

    Every stage run is kept in the result's ``stages``, in order, and ``seconds`` is the whole time.

    Args:
        problem: the volume, C-arm and X-ray.
        initial: the starting camera-to-world pose.
        stages: a search-only method's stages; the first is an `IntensityStage` whose first level
            searches with `CMAES` (`xrender.recipes.registration.methods.spends_time_budget`).
        budget_seconds: the wall time to spend (> 0).
        restarts: the most IPOP restarts the budget may buy (≥ 1).

    Raises:
        ValueError: stages that are not such a search, a budget that is not positive, or
            ``restarts < 1``.
    """
    stages = list(stages)
    head_stage = stages[0] if stages else None
    if not (isinstance(head_stage, IntensityStage) and isinstance(head_stage.levels[0].optimizer, CMAES)):
        raise ValueError("register_within: expected stages whose first is an IntensityStage searching with CMAES")
    if not (math.isfinite(budget_seconds) and budget_seconds > 0):
        raise ValueError(f"register_within: expected a positive budget_seconds, got {budget_seconds!r}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"register_within: restarts (equal_time_restarts): expected an int >= 1, got {restarts!r}")
    start = time.perf_counter()
    level = head_stage.levels[0]
    head = replace(head_stage, levels=(level,))
    tail = ([replace(head_stage, levels=head_stage.levels[1:])] if len(head_stage.levels) > 1 else []) + stages[1:]
    first = register(problem, initial, [head, *tail])
    runs, result = list(first.stages), first
    tail_seconds = sum(stage.seconds for stage in first.stages[1:])
    generation = first.stages[0].seconds / max(1, len(first.stages[0].history))
    left = budget_seconds - (time.perf_counter() - start) - tail_seconds
    if left > 2 * generation:
        optimizer = level.optimizer
        ipop = replace(
            optimizer,
            first_run=optimizer.restarts + 1,
            restarts=optimizer.restarts + restarts,
            stop=replace(optimizer.stop, max_seconds=left),
        )
        again = register(problem, initial, [replace(head, levels=(replace(level, optimizer=ipop),))])
        runs += again.stages
        if min(again.stages[0].history, default=math.inf) < min(first.stages[0].history, default=math.inf):
            result = register(problem, again.pose, tail) if tail else again
            runs += result.stages if tail else []
    return RegistrationResult(result.pose, first.initial, tuple(runs), time.perf_counter() - start)


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
        methods: method names (`xrender.recipes.registration.methods.build_method`).
        context: settings and models; its seed is replaced per trial.
        config: trials, success threshold and the equal-time reference.
        points: TRE targets (world mm); default `target_points` (the landmarks, else `bone_points`).
        moving: the volume a learned similarity sees (e.g. the bone at the network's training
            size); default ``subject.moving``.
        trials: pre-drawn trials (default `make_trials`).
        on_result: called with ``(method, trial, result)`` after each registration on this rank.
        progress: show a bar over registrations.

    Raises:
        ValueError: an unknown method, a method whose model is missing, or an ``equal_time``
            reference that is not one of ``methods`` (before any work).
    """
    for method in methods:
        build_method(method, context)  # fail fast on names and missing models
    check_equal_time(config, methods)
    points = target_points(subject, config) if points is None else points.to(torch.float64)
    trials = trials or make_trials(subject, geometry, config, points)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    mine = [i for i in range(len(trials)) if i % world == rank]
    isocenter = subject.full.isocenter.to(torch.float64)
    reference = config.equal_time
    run_order = sorted(methods, key=lambda m: m != reference)  # the reference first, the others in order
    budgeted = {m: reference is not None and m != reference and spends_time_budget(m) for m in methods}
    restarts = context.settings.equal_time_restarts
    records: list[TrialRecord] = []
    bar = tqdm(total=len(mine) * len(methods), desc="registrations", disable=not progress or rank != 0)
    for trial in mine:
        problem = RegistrationProblem(subject.full, geometry, trials.xrays[trial : trial + 1], moving or subject.moving)
        budget: float | None = None
        for method in run_order:
            stages = build_method(method, with_seed(context, trial_seed(config.seed, trial)))
            spend = budget if budgeted[method] else None
            if spend is None:
                result = register(problem, trials.initial[trial], stages)
            else:
                result = register_within(problem, trials.initial[trial], stages, spend, restarts=restarts)
            if method == reference:
                budget = result.seconds
            records.append(_record(method, trial, result, trials, points, geometry, isocenter, config, spend))
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
    ``median_stage_seconds`` (per stage), ``median_budget_seconds`` (``None`` without an equal-time
    budget), and ``median_handover``: per stage that hands its pose to another (every stage but a
    method's last), the medians of the errors where it left the pose (``mtre_mm``,
    ``rotation_error_deg``, ``translation_error_mm``, ``depth_error_mm``; `TrialRecord.stages`), over
    the trials that the method then registered (``success``) and those it did not (``failure``;
    ``None`` where there are none).
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
            "median_budget_seconds": _median([r.budget_seconds for r in rows if r.budget_seconds is not None]),
            "median_handover": _handover(rows),
        }
    return summary


def _handover(rows: Sequence[TrialRecord]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per handing-over stage, then per final outcome: the medians of the `_pose_errors` where it left the pose."""
    left: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        last = r.stages[-1]["stage"] if r.stages else None
        handed = {entry["stage"]: entry for entry in r.stages if entry["stage"] != last}  # each stage's last run
        for name, entry in handed.items():
            outcome = "success" if r.success else "failure"
            left.setdefault(name, {"success": [], "failure": []})[outcome].append(entry)
    return {
        name: {
            outcome: {key: _median([entry[key] for entry in entries]) for key in _POSE_ERRORS}
            for outcome, entries in outcomes.items()
        }
        for name, outcomes in left.items()
    }
