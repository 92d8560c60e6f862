"""Named registration methods: the ProST paper's two-stage method and its baselines, as stage lists.

A method name is stage names joined by ``+``, run left to right (``"prost+cmaes"``; its grammar,
light to import, is `xrender.recipes.method_names`). The first
stage searches **globally** from the initial pose (wide widths, a pose prior and bounds sized by
the initial-pose distribution); a search stage after another one **refines** that stage's pose
(narrow widths). Stages (`STAGES`):

| stage | what it does |
| --- | --- |
| ``cmaes`` | CMA-ES on gradient NCC of DRRs, coarse (32 px) then fine (64 px) — the paper's baseline and its stage 2. |
| ``nevergrad[:N]`` | the same search with nevergrad's ``N`` (default ``TwoPointsDE``), without a box |
| ``ncc-adam`` | Adam on multiscale NCC's pose gradient, coarse to fine — DiffDRR-style. |
| ``prost[:O]`` | stage 1 on a learned ProST similarity (needs a model); ``O`` in `PROST_OPTIMIZERS`. |

``prost:multistart`` is the one stage that takes the rest of the chain in: it descends the learned
similarity from the 24 rotations of the cube applied to the initial pose, and the stages after it
run from each of its few best ends (`xrender.registration.MultiStartStage`), as global searches
about each end, since a kept end can lie tens of degrees from the truth. ``prost:multistart+cmaes``
is the two-stage method with multiple starts.
| ``regression`` | a pose-regression network's prediction (needs a regressor). |

`METHODS_IN_PAPER` lists the comparison of the paper: ``cmaes``, ``prost+cmaes``, ``regression``.
All settings live in `MethodSettings` (CPU-sized defaults).

A method made of `BUDGET_STAGES` only (``cmaes``, ``cmaes+cmaes`` …) can spend a wall-time budget
on IPOP restarts of its first level (`spends_time_budget`): the evaluation's equal-time comparison
gives it the time another method took (`xrender.recipes.registration.evaluation.register_within`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from xrender.recipes._config import ConfigRecord
from xrender.recipes.method_names import MissingModelError
from xrender.registration import (
    CMAES,
    DescentOptions,
    GradientOptimizer,
    IntensityStage,
    LearnedDescentStage,
    LearnedSearchStage,
    Level,
    MultiStartStage,
    NevergradOptimizer,
    PosePrior,
    RegressionStage,
    Stage,
    StopRule,
)
from xrender.similarity.prost import ProSTNetwork

__all__ = [
    "BUDGET_STAGES",
    "PROST_OPTIMIZERS",
    "METHODS_IN_PAPER",
    "STAGES",
    "MethodContext",
    "MethodSettings",
    "available_stages",
    "build_method",
    "spends_time_budget",
]

Six = tuple[float, float, float, float, float, float]

#: The paper's comparison: CMA-ES alone, ProST then CMA-ES, and pose regression.
METHODS_IN_PAPER = ("cmaes", "prost+cmaes", "regression")


@dataclass(frozen=True)
class MethodSettings(ConfigRecord):
    """Settings of every stage (degrees and mm; sizes in detector pixels across).

    Attributes:
        global_sigma: CMA-ES / nevergrad widths of a global search (about the initial-pose spread).
        global_bounds: half-widths of its search box about the initial pose.
        prior_std: widths of its Gaussian pose prior (the initial-pose distribution's).
        prior_weight: the prior's weight λ (gradient NCC lies in [−1, 1]).
        refine_sigma: widths of a refining search after another stage.
        refine_bounds: half-widths of its box.
        coarse_size: working detector size of the first level (pixels across).
        fine_size: working detector size of the second level.
        popsize: population per level of a global search (coarse, fine).
        generations: the most generations per level of a global search (coarse, fine).
        refine_popsize: population per level of a refinement (coarse, fine).
        refine_generations: the most generations per level of a refinement (coarse, fine).
        similarity: the intensity similarity of search stages.
        similarity_options: its options.
        plateau_tol: the plateau rule on the best cost per generation (``None``: off).
        adam_steps: iterations per level of ``ncc-adam`` (coarse, fine).
        adam_rotation_deg: its rotation step scale per iteration (degrees).
        adam_translation_mm: its translation step scale per iteration (mm).
        prost_steps: the most learned-descent steps (`xrender.registration.DescentOptions`, as
            the three after it; its other options keep their defaults).
        prost_plateau_tol: the learned descent's plateau rule (``None``: off).
        prost_rotation_step_deg: the learned descent's first rotation step (degrees).
        prost_translation_step_mm: the learned descent's first translation step (mm).
        multistart_steps: the most learned-descent steps of ``prost:multistart`` (its starts
            descend together, so each step costs 24 poses).
        multistart_decay: its step-size factor per step.
        multistart_rotation_step_deg: its first rotation step (degrees). With the decay and the
            momentum (`xrender.registration.DescentOptions`), a steady direction travels about
            16 first steps in 60 steps: 4° buys ~65°, the farthest any pose lies from its
            nearest start (62.8°, `xrender.geometry.cube_rotations`).
        multistart_translation_step_mm: its first translation step (mm): 10 mm buys ~160 mm of
            travel, the reach of the ``"wide"`` initial poses (σ 50 mm in plane, 120 mm in depth).
        multistart_keep: how many of its ends, by the image similarity, the stages after it
            refine (besides the end of the unturned start).
        multistart_keep_learned: how many more ends they refine, by the learned score.
        multistart_separation_deg: the least rotation between two of those ends (degrees).
        max_seconds: time budget of each level (``None``: none).
        restarts: IPOP restarts of a global CMA-ES search's first level (`CMAES.restarts`; 0: none).
        equal_time_restarts: the most IPOP restarts an equal-time budget may buy the first level
            of a search-only method (`xrender.recipes.registration.evaluation.register_within`).
    """

    global_sigma: Six = (15.0, 15.0, 15.0, 25.0, 25.0, 60.0)
    global_bounds: Six = (75.0, 75.0, 75.0, 75.0, 75.0, 180.0)
    prior_std: Six = (25.0, 25.0, 25.0, 25.0, 25.0, 60.0)
    prior_weight: float = 0.02
    refine_sigma: Six = (4.0, 4.0, 4.0, 8.0, 8.0, 20.0)
    refine_bounds: Six = (20.0, 20.0, 20.0, 40.0, 40.0, 100.0)
    coarse_size: int = 32
    fine_size: int = 64
    popsize: tuple[int, int] = (50, 20)
    generations: tuple[int, int] = (60, 30)
    refine_popsize: tuple[int, int] = (20, 20)
    refine_generations: tuple[int, int] = (40, 30)
    similarity: str = "gradient-ncc"
    similarity_options: dict[str, Any] = field(default_factory=dict)
    plateau_tol: float | None = 1e-4
    adam_steps: tuple[int, int] = (100, 50)
    adam_rotation_deg: float = 1.0
    adam_translation_mm: float = 2.0
    prost_steps: int = DescentOptions.steps
    prost_plateau_tol: float | None = DescentOptions.plateau_tol
    prost_rotation_step_deg: float = DescentOptions.rotation_step_deg
    prost_translation_step_mm: float = DescentOptions.translation_step_mm
    multistart_steps: int = 60
    multistart_decay: float = 0.96
    multistart_rotation_step_deg: float = 4.0
    multistart_translation_step_mm: float = 10.0
    multistart_keep: int = MultiStartStage.keep
    multistart_keep_learned: int = MultiStartStage.keep_learned
    multistart_separation_deg: float = MultiStartStage.separation_deg
    max_seconds: float | None = None
    restarts: int = 0
    equal_time_restarts: int = 8

    field_kind: ClassVar[str] = "method setting"

    def __post_init__(self) -> None:
        for name in ("restarts", "equal_time_restarts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"method setting {name}: expected an int >= 0, got {value!r}")
        for name in ("multistart_rotation_step_deg", "multistart_translation_step_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"method setting {name}: expected a number > 0, got {value!r}")

    def stop(self, iterations: int) -> StopRule:
        """The stop rule of one level."""
        return StopRule(max_iterations=iterations, max_seconds=self.max_seconds, plateau_tol=self.plateau_tol)


@dataclass(frozen=True)
class MethodContext:
    """What stages are built from: settings, trained models and the seed of this case.

    Attributes:
        settings: all stage settings.
        prost: a ProST network for ``prost`` stages.
        regressor: a pose regressor for ``regression`` stages.
        seed: seeds the stochastic optimisers (e.g. one seed per trial).
    """

    settings: MethodSettings = field(default_factory=MethodSettings)
    prost: ProSTNetwork | None = None
    regressor: Any = None
    seed: int = 0


def _search_levels(
    context: MethodContext, refine: bool, make: Callable[..., Any], first: dict[str, Any]
) -> tuple[Level, Level]:
    s = context.settings
    sigma, bounds = (s.refine_sigma, s.refine_bounds) if refine else (s.global_sigma, s.global_bounds)
    popsize = s.refine_popsize if refine else s.popsize
    generations = s.refine_generations if refine else s.generations
    prior = None if refine else PosePrior(std=s.prior_std, weight=s.prior_weight)
    fine_sigma = tuple(v / 4 for v in sigma)
    coarse = make(
        sigma=sigma, popsize=popsize[0], bounds=bounds, seed=context.seed, stop=s.stop(generations[0]), **first
    )
    fine = make(sigma=fine_sigma, popsize=popsize[1], bounds=sigma, seed=context.seed + 1, stop=s.stop(generations[1]))
    return Level(s.coarse_size, coarse, prior), Level(s.fine_size, fine)


def _search_stage(
    context: MethodContext, refine: bool, make: Callable[..., Any], name: str, first: dict[str, Any] | None = None
) -> Stage:
    """A two-level search stage; ``first`` holds extra options of its first level's optimiser."""
    s = context.settings
    levels = _search_levels(context, refine, make, first or {})
    return IntensityStage(levels, s.similarity, dict(s.similarity_options), name=name)


def _cmaes(context: MethodContext, refine: bool, argument: str | None) -> Stage:
    first = {} if refine else {"restarts": context.settings.restarts}
    return _search_stage(context, refine, CMAES, "cmaes", first)


def _nevergrad(context: MethodContext, refine: bool, argument: str | None) -> Stage:
    name = argument or "TwoPointsDE"

    def make(**options: Any) -> NevergradOptimizer:  # no box: DE and PSO would start uniform over it
        return NevergradOptimizer(name=name, **{**options, "bounds": None})

    return _search_stage(context, refine, make, f"nevergrad:{name}")


def _ncc_adam(context: MethodContext, refine: bool, argument: str | None) -> Stage:
    s = context.settings
    make = [
        GradientOptimizer(
            method="adam",
            rotation_step_deg=s.adam_rotation_deg / factor,
            translation_step_mm=s.adam_translation_mm / factor,
            stop=s.stop(steps),
        )
        for factor, steps in zip((1, 2), s.adam_steps)
    ]
    levels = (Level(s.coarse_size, make[0]), Level(s.fine_size, make[1]))
    patch = max(2, s.coarse_size // 4)  # global NCC plus NCC of patches a quarter of the coarse image across
    return IntensityStage(levels, "multiscale-ncc", {"patch_sizes": (None, patch)}, name="ncc-adam")


def _descent_options(settings: MethodSettings, **options: Any) -> DescentOptions:
    """The learned descent's options from the ``prost_*`` settings, with ``options`` on top."""
    return DescentOptions(
        **{
            "steps": settings.prost_steps,
            "rotation_step_deg": settings.prost_rotation_step_deg,
            "translation_step_mm": settings.prost_translation_step_mm,
            "plateau_tol": settings.prost_plateau_tol,
            **options,
        }
    )


def _prost_descent(context: MethodContext, refine: bool, line_search: bool) -> Stage:
    descent = _descent_options(context.settings, line_search=line_search)
    return LearnedDescentStage(context.prost, descent, name="prost" if not line_search else "prost:line-search")


def _prost_multistart(context: MethodContext, refine: bool) -> Stage:
    """The learned descent from the 24 rotations of the cube; `build_method` hands it the stages after it."""
    s = context.settings
    descent = _descent_options(
        s,
        steps=s.multistart_steps,
        decay=s.multistart_decay,
        rotation_step_deg=s.multistart_rotation_step_deg,
        translation_step_mm=s.multistart_translation_step_mm,
    )
    return MultiStartStage(
        LearnedDescentStage(context.prost, descent, name="prost:descent"),
        keep=s.multistart_keep,
        keep_learned=s.multistart_keep_learned,
        separation_deg=s.multistart_separation_deg,
        similarity=s.similarity,
        similarity_options=dict(s.similarity_options),
        size=s.fine_size,
        name="prost:multistart",
    )


#: Seed offset of a ``prost:cmaes`` search, apart from the seeds of the ``cmaes`` levels that follow it.
PROST_SEARCH_SEED_OFFSET = 2


def _prost_cmaes(context: MethodContext, refine: bool) -> Stage:
    """CMA-ES on the learned score with a global search's widths, box and budget, without a pose prior.

    The prior's weight is scaled for gradient NCC in [−1, 1]; the learned score has no fixed range.
    """
    s = context.settings
    sigma, bounds = (s.refine_sigma, s.refine_bounds) if refine else (s.global_sigma, s.global_bounds)
    popsize, generations = (s.refine_popsize, s.refine_generations) if refine else (s.popsize, s.generations)
    search = CMAES(
        sigma=sigma,
        popsize=popsize[0],
        bounds=bounds,
        seed=context.seed + PROST_SEARCH_SEED_OFFSET,
        stop=s.stop(generations[0]),
    )
    return LearnedSearchStage(context.prost, search, name="prost:cmaes")


#: How a ``prost`` stage uses the learned similarity: ``prost`` / ``prost:descent`` (its pose gradient,
#: fixed decaying steps), ``prost:line-search`` (its pose gradient, step lengths chosen on its score),
#: ``prost:cmaes`` (CMA-ES on its score, with the search settings of a ``cmaes`` stage's first level),
#: ``prost:multistart`` (its pose gradient from 24 turned starts; the stages after it refine its best ends).
PROST_OPTIMIZERS: dict[str, Callable[[MethodContext, bool], Stage]] = {
    "descent": lambda context, refine: _prost_descent(context, refine, line_search=False),
    "line-search": lambda context, refine: _prost_descent(context, refine, line_search=True),
    "cmaes": _prost_cmaes,
    "multistart": _prost_multistart,
}


def _prost(context: MethodContext, refine: bool, argument: str | None) -> Stage:
    if context.prost is None:
        raise MissingModelError("prost", "ProST model", "prost")
    name = argument or "descent"
    if name not in PROST_OPTIMIZERS:
        raise ValueError(f"stage 'prost:{name}': expected prost:{', prost:'.join(PROST_OPTIMIZERS)}")
    return PROST_OPTIMIZERS[name](context, refine)


def _regression(context: MethodContext, refine: bool, argument: str | None) -> Stage:
    if context.regressor is None:
        raise MissingModelError("regression", "pose regressor", "regressor")
    return RegressionStage(context.regressor)


StageFactory = Callable[[MethodContext, bool, "str | None"], Stage]

#: Stage factories by name: ``factory(context, refine, argument) -> Stage``.
STAGES: dict[str, StageFactory] = {
    "cmaes": _cmaes,
    "nevergrad": _nevergrad,
    "ncc-adam": _ncc_adam,
    "prost": _prost,
    "regression": _regression,
}


#: Stages that can spend a wall-time budget on IPOP restarts of their first level (CMA-ES searches).
BUDGET_STAGES = frozenset({"cmaes"})


def available_stages() -> list[str]:
    """Stage names a method name may chain with ``+``."""
    return sorted(STAGES)


def _stage_specs(name: str) -> list[tuple[str, str | None]]:
    """``"prost+nevergrad:PSO"`` → ``[("prost", None), ("nevergrad", "PSO")]``.

    Raises:
        ValueError: an empty or unknown stage name (the message lists the known ones).
    """
    specs = [spec.strip().partition(":") for spec in str(name).split("+")]
    for stage_name, _, _ in specs:
        if stage_name not in STAGES:
            raise ValueError(
                f"method {name!r}: unknown stage {stage_name!r}; stages: {', '.join(available_stages())} "
                "(chain them with '+', e.g. 'prost+cmaes')"
            )
    return [(stage, argument or None) for stage, _, argument in specs]


def build_method(name: str, context: MethodContext | None = None) -> list[Stage]:
    """The stages of method ``name`` (e.g. ``"prost+cmaes"``, ``"nevergrad:TwoPointsDE"``).

    Raises:
        ValueError: an empty or unknown stage name (the message lists the known ones).
        MissingModelError: a stage whose model is missing from ``context``.
    """
    return _build_chain(_stage_specs(name), context or MethodContext(), refine=False)


def _build_chain(specs: list[tuple[str, str | None]], context: MethodContext, refine: bool) -> list[Stage]:
    """The stages of ``specs``; every one after the first refines. A `MultiStartStage` takes the rest
    of the chain as its own refinement, built as a fresh chain (its first stage searches globally)."""
    stages: list[Stage] = []
    for k, (stage, argument) in enumerate(specs):
        built = STAGES[stage](context, refine or k > 0, argument)
        if isinstance(built, MultiStartStage):
            return [*stages, replace(built, refine=tuple(_build_chain(specs[k + 1 :], context, refine=False)))]
        stages.append(built)
    return stages


def spends_time_budget(name: str) -> bool:
    """Whether method ``name`` is search-only — made of `BUDGET_STAGES` alone — and so can spend a time budget.

    Raises:
        ValueError: as `build_method`, for an unknown stage.
    """
    return all(stage in BUDGET_STAGES for stage, _ in _stage_specs(name))


def with_seed(context: MethodContext, seed: int) -> MethodContext:
    """``context`` with another seed (one per trial)."""
    return replace(context, seed=seed)
