"""The registration core: stop rules, the objective, the optimisers and the stages."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_preset, motion_from_pose, pose_from_motion, standard_pose
from xrender.image import bin_image
from xrender.metrics import target_registration_error
from xrender.phantom import pelvis_phantom
from xrender.registration import (
    CMAES,
    GradientOptimizer,
    IntensityStage,
    Level,
    NevergradOptimizer,
    PoseObjective,
    PosePrior,
    RegistrationProblem,
    RegressionStage,
    StopRule,
    available_optimizers,
    get_optimizer,
    optimizers,
    register,
)
from xrender.registration.optimizers import SEED_LIMIT, run_seed
from xrender.render import render

ISO = torch.tensor([10.0, -20.0, 5.0], dtype=torch.float64)
REFERENCE = standard_pose("ap", 620.0, ISO)
TARGET = torch.tensor([6.0, -4.0, 9.0, 12.0, -7.0, 20.0], dtype=torch.float64)


class QuadraticSimilarity:
    """``-Σ ((x(pose) - target) / scale)²`` with ``x`` the motion about REFERENCE; counts calls."""

    def __init__(self) -> None:
        self.isocenter = ISO
        self.calls = 0
        self.scale = torch.tensor([5.0, 5.0, 5.0, 10.0, 10.0, 10.0], dtype=torch.float64)

    def __call__(self, pose, fixed):
        self.calls += 1
        x = motion_from_pose(pose, REFERENCE.expand_as(pose), ISO)
        return -(((x - TARGET) / self.scale) ** 2).sum(-1)


def objective(**options) -> PoseObjective:
    return PoseObjective(QuadraticSimilarity(), torch.zeros(1, 1, 4, 4), REFERENCE, **options)


# --------------------------------------------------------------------------- stop rules and priors
def test_stop_rule_reasons():
    rule = StopRule(max_iterations=5, plateau_window=3, plateau_tol=1e-3)
    assert rule.reason([1.0, 0.5], 0.0) is None
    assert rule.reason([1.0, 0.5, 0.5, 0.5], 0.0) == "plateau"
    assert rule.reason([5.0, 4.0, 3.0, 2.0, 1.0], 0.0) == "iterations"
    assert StopRule(max_seconds=1.0).reason([1.0], 2.0) == "time"
    assert StopRule().reason([1.0] * 50, 0.0) is None  # no plateau rule by default


def test_stop_rule_looks_one_iteration_ahead_of_the_time_budget():
    rule = StopRule(max_seconds=1.0)
    assert rule.reason([1.0], 0.4, next_seconds=0.5) is None
    assert rule.reason([1.0], 0.6, next_seconds=0.5) == "time"  # the next iteration would end at 1.1 s


@pytest.mark.parametrize(
    "options",
    [{"max_iterations": 0}, {"max_seconds": -1.0}, {"plateau_window": 1}, {"plateau_tol": -1.0}],
)
def test_stop_rule_rejects_bad_options(options):
    with pytest.raises(ValueError, match="StopRule"):
        StopRule(**options)


def test_prior_penalty_value():
    prior = PosePrior(std=(1, 1, 1, 2, 2, 2), weight=0.5)
    x = torch.tensor([[1.0, 0, 0, 2.0, 0, 0]])
    torch.testing.assert_close(prior.penalty(x), torch.tensor([0.5 * 0.5 * 2.0]))


@pytest.mark.parametrize("options", [{"std": (1, 1, 1)}, {"std": (1, 1, 1, 1, 1, 0)}, {"std": (1,) * 6, "weight": 0}])
def test_prior_rejects_bad_options(options):
    with pytest.raises(ValueError):
        PosePrior(**options)


# --------------------------------------------------------------------------- objective
def test_objective_batched_equals_one_by_one_and_counts():
    f = objective(max_batch=3, prior=PosePrior(std=(10,) * 6))
    x = torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
    together = f(x)
    alone = torch.cat([f(row[None]) for row in x])
    torch.testing.assert_close(together, alone)
    assert f.evaluations == 14
    assert f.similarity.calls == 3 + 7  # ceil(7 / 3) chunks, then one call per row


def test_objective_rejects_bad_inputs():
    with pytest.raises(ValueError, match="fixed"):
        PoseObjective(QuadraticSimilarity(), torch.zeros(2, 1, 4, 4), REFERENCE)
    with pytest.raises(ValueError, match="max_batch"):
        objective(max_batch=0)
    with pytest.raises(ValueError, match="params"):
        objective()(torch.zeros(3, 5))


# --------------------------------------------------------------------------- optimisers
QUICK = StopRule(max_iterations=60)


@pytest.mark.parametrize(
    "optimizer",
    [
        CMAES(sigma=(5, 5, 5, 10, 10, 10), popsize=12, stop=QUICK),
        NevergradOptimizer(name="TwoPointsDE", sigma=(5, 5, 5, 10, 10, 10), popsize=12, stop=QUICK),
        GradientOptimizer(method="adam", rotation_step_deg=0.5, translation_step_mm=1.0, stop=QUICK),
        GradientOptimizer(method="lbfgs", stop=StopRule(max_iterations=20)),
    ],
    ids=["cmaes", "nevergrad", "adam", "lbfgs"],
)
def test_optimizers_find_the_optimum_of_a_quadratic(optimizer):
    f = objective()
    result = optimizer.minimize(f)
    torch.testing.assert_close(result.params, TARGET, atol=1.0, rtol=0.0)
    assert result.cost < -0.0 + 0.05
    assert result.evaluations == f.evaluations
    assert len(result.history) == result.trajectory.shape[0] - 1
    assert result.seconds > 0
    torch.testing.assert_close(result.trajectory[0], torch.zeros(6, dtype=torch.float64))


def test_cmaes_scores_a_generation_in_one_call_and_is_seeded():
    f = objective(max_batch=64)
    first = CMAES(popsize=16, seed=3, stop=StopRule(max_iterations=10)).minimize(f)
    assert f.similarity.calls == 10
    assert f.evaluations == 160
    second = CMAES(popsize=16, seed=3, stop=StopRule(max_iterations=10)).minimize(objective())
    torch.testing.assert_close(first.params, second.params, rtol=0, atol=0)
    other = CMAES(popsize=16, seed=4, stop=StopRule(max_iterations=10)).minimize(objective())
    assert not torch.equal(first.params, other.params)


def test_cmaes_stays_inside_its_bounds():
    result = CMAES(sigma=(1,) * 6, bounds=(2, 2, 2, 3, 3, 3), popsize=10, stop=QUICK).minimize(objective())
    limit = torch.tensor([2, 2, 2, 3, 3, 3], dtype=torch.float64)
    assert bool((result.params.abs() <= limit + 1e-9).all())
    torch.testing.assert_close(result.params, limit * TARGET.sign(), atol=0.2, rtol=0)  # pressed to the wall


def test_cmaes_ipop_restarts_double_the_population():
    f = objective()
    result = CMAES(popsize=6, restarts=2, seed=5, stop=StopRule(max_iterations=5)).minimize(f)
    assert result.stop_reason == "iterations; 2 restarts"
    assert result.evaluations == 5 * (6 + 12 + 24)  # three runs of five generations
    assert f.similarity.calls == 15  # still one batched call per generation
    single = CMAES(popsize=6, seed=5, stop=StopRule(max_iterations=5)).minimize(objective())
    assert result.cost <= single.cost  # the best of all runs, the first run included
    again = CMAES(popsize=6, restarts=2, seed=5, stop=StopRule(max_iterations=5)).minimize(objective())
    torch.testing.assert_close(again.params, result.params, rtol=0, atol=0)  # seeded, restarts included


def test_cmaes_restarts_stop_within_the_time_budget(monkeypatch):
    ticks = itertools.count()
    # a clock that advances 1 ms per reading, so the budget does not depend on the machine's load
    monkeypatch.setattr(optimizers, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 1e-3))
    stop = StopRule(max_iterations=40, max_seconds=0.3)
    result = CMAES(popsize=6, restarts=50, stop=stop).minimize(objective())
    assert result.stop_reason.startswith("time; ")
    assert int(result.stop_reason.split("; ")[1].split()[0]) >= 1  # it restarted ...
    assert 0.3 <= result.seconds < 0.3 + 0.01  # ... and stopped at the first reading past the budget


def test_cmaes_continues_an_ipop_search():
    f = objective()
    result = CMAES(popsize=6, restarts=2, first_run=1, stop=StopRule(max_iterations=3)).minimize(f)
    assert result.evaluations == 3 * (12 + 24)  # runs 1 and 2
    assert result.stop_reason == "iterations; 1 restarts"


def test_any_seed_works_for_the_population_optimizers():
    assert run_seed(7, 0) == 8  # the first run keeps its historical seed
    assert run_seed(2**32 - 1, 0) == 1  # folded into cma's range, never 0 (cma's "use the time")
    assert all(1 <= run_seed(2**40 + 7, r) < SEED_LIMIT for r in range(3))
    assert len({run_seed(3, r) for r in range(4)}) == 4
    huge = 2**40 + 7
    assert CMAES(popsize=6, seed=huge, stop=StopRule(max_iterations=2)).minimize(objective()).evaluations == 12
    nevergrad = NevergradOptimizer(name="OnePlusOne", popsize=2, seed=huge, stop=StopRule(max_iterations=2))
    assert nevergrad.minimize(objective()).evaluations == 4


def test_plateau_stops_early():
    result = CMAES(popsize=8, stop=StopRule(max_iterations=500, plateau_tol=1e-6)).minimize(objective())
    assert result.stop_reason in {"plateau"} or result.stop_reason.startswith("cma:")
    assert len(result.history) < 500


def test_optimizer_registry_and_errors():
    assert {"cmaes", "nevergrad", "adam", "sgd", "lbfgs"} <= set(available_optimizers())
    assert isinstance(get_optimizer("nevergrad", name="PSO"), NevergradOptimizer)
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_optimizer("simplex")
    with pytest.raises(ValueError, match="nevergrad's registry"):
        NevergradOptimizer(name="NoSuchOptimizer")
    with pytest.raises(ValueError, match="sigma"):
        CMAES(sigma=(1, 2, 3))
    with pytest.raises(ValueError, match="popsize"):
        CMAES(popsize=1)
    with pytest.raises(ValueError, match="restarts: expected an int >= 0"):
        CMAES(restarts=-1)
    with pytest.raises(ValueError, match=r"first_run: expected 0 <= first_run <= restarts \(1\), got 2"):
        CMAES(restarts=1, first_run=2)
    with pytest.raises(ValueError, match="method"):
        GradientOptimizer(method="rmsprop")


# --------------------------------------------------------------------------- problems and stages
def _phantom_problem(device: torch.device) -> tuple[RegistrationProblem, torch.Tensor]:
    """The 32³ pelvis on ``device``, its 32 × 32 AP X-ray and the true pose."""
    volume = hu_to_mu(pelvis_phantom().to_volume(32)).to(device)
    carm = get_preset("prost").downsample(4)  # 32 × 32
    iso = volume.isocenter.to(torch.float64)
    truth = standard_pose("ap", carm.sid, iso)
    with torch.no_grad():
        xray = render(volume, carm, truth)
    return RegistrationProblem(volume, carm, xray), truth


@pytest.fixture(scope="module")
def phantom_problem():
    return _phantom_problem(torch.device("cpu"))


def test_bin_image_matches_the_binned_geometry(phantom_problem):
    problem, _ = phantom_problem
    geometry, xray = problem.at(3)
    assert tuple(xray.shape[-2:]) == (geometry.height, geometry.width) == (10, 10)
    torch.testing.assert_close(bin_image(problem.xray, 2)[0, 0, 0, 0], problem.xray[0, 0, :2, :2].mean())
    assert problem.at_size(16)[1].shape[-1] == 16
    assert problem.at_size(None)[1] is problem.xray
    assert problem.binned_to(8)[0] == problem.geometry.downsample(4)
    with pytest.raises(ValueError, match="divisor"):
        problem.binned_to(24)


def test_problem_rejects_mismatched_xray(phantom_problem):
    problem, _ = phantom_problem
    with pytest.raises(ValueError, match="32×32 pixels"):
        RegistrationProblem(problem.volume, problem.geometry, torch.zeros(1, 1, 30, 32))


def test_intensity_stage_recovers_a_small_offset(device):
    problem, truth = _phantom_problem(device)
    iso = problem.isocenter.to(torch.float64)
    motion = torch.tensor([3.0, -2.0, 4.0, 6.0, -5.0, 15.0], dtype=torch.float64, device=iso.device)
    start = pose_from_motion(motion, truth, iso)
    levels = (
        Level(16, CMAES(sigma=(4, 4, 4, 8, 8, 20), popsize=16, stop=StopRule(max_iterations=25))),
        Level(None, CMAES(sigma=(1, 1, 1, 2, 2, 5), popsize=12, stop=StopRule(max_iterations=20))),
    )
    result = register(problem, start, [IntensityStage(levels, "ncc")])
    points = torch.cat([iso[None], iso + torch.eye(3, dtype=torch.float64, device=iso.device) * 30])  # and 30 mm off
    before = float(target_registration_error(start, truth, points))
    after = float(target_registration_error(result.pose, truth, points))
    assert before > 10
    assert after < 3, (before, after)
    stage = result.stages[0]
    assert stage.trajectory.shape[0] == 1 + len(stage.history)
    assert stage.evaluations == 16 * 25 + 12 * 20
    torch.testing.assert_close(result.trajectory[0], start)


def test_regression_stage_uses_the_prediction(phantom_problem):
    problem, truth = phantom_problem

    class Fixed:
        image_size = 16

        def predict_pose(self, image):
            assert image.shape == (1, 1, 16, 16)
            return truth[None]

    result = register(problem, REFERENCE, [RegressionStage(Fixed())])
    torch.testing.assert_close(result.pose, truth)


def test_register_rejects_bad_stages(phantom_problem):
    problem, truth = phantom_problem
    with pytest.raises(ValueError, match="at least one"):
        register(problem, truth, [])
    with pytest.raises(TypeError, match="Stage"):
        register(problem, truth, ["cmaes"])
    with pytest.raises(ValueError, match=r"Level\.size"):
        Level(0, CMAES())
    with pytest.raises(ValueError, match="at least one Level"):
        IntensityStage(())
