"""Registration metrics: the 3-D TRE, rotation and translation errors, reprojection distance, success, capture range."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import binomtest

from xrender.geometry import euler_to_matrix, get_preset, make_pose, perturb, se3_exp, standard_pose
from xrender.metrics import (
    LOGISTIC_SCALE_MM,
    capture_range,
    depth_error,
    is_success,
    reprojection_distance,
    rotation_error,
    target_registration_error,
    translation_error,
    wilson_interval,
)

POINTS = torch.tensor([[0.0, 0, 0], [100.0, 0, 0], [0, 50.0, 20.0]], dtype=torch.float64)


def test_identical_poses_have_zero_tre():
    T = se3_exp(torch.tensor([0.1, 0.2, 0.3, 10.0, 20.0, 30.0], dtype=torch.float64))
    assert float(target_registration_error(T, T, POINTS)) == pytest.approx(0, abs=1e-9)


def test_a_camera_translation_moves_every_point_by_its_length():
    truth = se3_exp(torch.tensor([0.1, 0.2, 0.3, 10.0, 20.0, 30.0], dtype=torch.float64))
    shift = make_pose(torch.eye(3, dtype=torch.float64), torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64))
    assert float(target_registration_error(truth @ shift, truth, POINTS)) == pytest.approx(5.0)


def test_rotation_about_a_point_golden_value():
    R = euler_to_matrix(torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64), "xyz", degrees=True)
    rotated = make_pose(R, torch.zeros(3, dtype=torch.float64))
    points = torch.tensor([[10.0, 0, 0], [0, 0, 7.0]], dtype=torch.float64)  # on and off the axis
    expected = (10 * math.sqrt(2) + 0) / 2
    assert float(target_registration_error(rotated, torch.eye(4, dtype=torch.float64), points)) == pytest.approx(
        expected
    )


def test_batched_equals_one_by_one():
    poses = se3_exp(torch.randn(4, 6, dtype=torch.float64) * 10)
    truth = se3_exp(torch.zeros(6, dtype=torch.float64))
    batched = target_registration_error(poses, truth, POINTS)
    assert torch.allclose(batched, torch.stack([target_registration_error(p, truth, POINTS) for p in poses]))


def test_errors():
    T = torch.eye(4)
    with pytest.raises(ValueError, match="points"):
        target_registration_error(T, T, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="estimate"):
        target_registration_error(torch.eye(3), T, POINTS)
    with pytest.raises(ValueError, match="truth"):
        target_registration_error(T, torch.full((4, 4), math.nan), POINTS)


# --------------------------------------------------------------------------- rotation, translation, reprojection
def _motion(rx_deg: float, t: tuple[float, float, float]) -> torch.Tensor:
    iso = torch.tensor([5.0, -3.0, 8.0], dtype=torch.float64)
    reference = standard_pose("ap", 620.0, iso)
    R = euler_to_matrix(torch.tensor([rx_deg, 0.0, 0.0], dtype=torch.float64), "xyz", degrees=True)
    return perturb(reference, make_pose(R, torch.tensor(t, dtype=torch.float64)), iso), reference, iso


def test_rotation_error_is_the_angle_in_degrees():
    moved, reference, _ = _motion(12.5, (30.0, 0.0, 0.0))
    assert float(rotation_error(moved, reference)) == pytest.approx(12.5)
    assert float(rotation_error(reference, reference)) == pytest.approx(0.0, abs=1e-6)


def test_translation_error_ignores_rotation_about_the_isocentre():
    turned, reference, iso = _motion(20.0, (0.0, 0.0, 0.0))
    assert float(translation_error(turned, reference, iso)) == pytest.approx(0.0, abs=1e-9)
    shifted, _, _ = _motion(20.0, (3.0, 4.0, 12.0))
    assert float(translation_error(shifted, reference, iso)) == pytest.approx(13.0)


def test_convention_depth_error_is_the_signed_camera_z_part_of_the_translation_error():
    """+ = the estimate puts the volume farther from the source (toward the detector, camera +z)."""
    shifted, reference, iso = _motion(20.0, (3.0, 4.0, 12.0))
    assert float(depth_error(shifted, reference, iso)) == pytest.approx(12.0)
    assert float(depth_error(reference, shifted, iso)) == pytest.approx(-12.0)
    turned, _, _ = _motion(35.0, (0.0, 0.0, 0.0))  # a turn about the isocentre has no depth error
    assert float(depth_error(turned, reference, iso)) == pytest.approx(0.0, abs=1e-9)
    poses = perturb(reference.expand(5, 4, 4), se3_exp(torch.randn(5, 6, dtype=torch.float64) * 10), iso)
    depth, total = depth_error(poses, reference, iso), translation_error(poses, reference, iso)
    assert bool((depth.abs() <= total + 1e-9).all())  # one component of the offset
    assert torch.allclose(depth, torch.stack([depth_error(p, reference, iso) for p in poses]))


def test_depth_error_refuses_a_malformed_isocentre():
    with pytest.raises(ValueError, match="isocenter"):
        depth_error(torch.eye(4), torch.eye(4), torch.zeros(2))


def test_convention_reprojection_distance_is_not_a_tre():
    """A shift along the principal ray barely moves the isocentre's projection, but it is a 3-D error."""
    carm = get_preset("prost")
    moved, reference, iso = _motion(0.0, (0.0, 0.0, 50.0))
    assert float(target_registration_error(moved, reference, iso[None])) == pytest.approx(50.0)
    assert float(reprojection_distance(moved, reference, iso[None], carm)) == pytest.approx(0.0, abs=1e-6)
    sideways, _, _ = _motion(0.0, (10.0, 0.0, 0.0))
    magnification = carm.sdd / carm.sid  # the isocentre sits at the source-to-isocentre distance
    assert float(reprojection_distance(sideways, reference, iso[None], carm)) == pytest.approx(10.0 * magnification)


def test_success_threshold():
    assert is_success(torch.tensor([9.9, 10.0, 30.0])).tolist() == [True, False, False]
    assert is_success(torch.tensor([4.0]), threshold_mm=2.0).tolist() == [False]
    with pytest.raises(ValueError, match="threshold_mm"):
        is_success(torch.tensor([1.0]), threshold_mm=0.0)


def test_reprojection_distance_errors():
    moved, reference, _ = _motion(0.0, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="at least one point"):
        reprojection_distance(moved, reference, torch.zeros(0, 3, dtype=torch.float64), get_preset("prost"))
    with pytest.raises(ValueError, match="estimate"):
        reprojection_distance(moved[:3], reference, torch.zeros(1, 3, dtype=torch.float64), get_preset("prost"))


# --------------------------------------------------------------------------- capture range
def _logistic_draws(n: int, a: float, b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tre = rng.uniform(0.0, 200.0, n)
    return tre, rng.uniform(size=n) < 1 / (1 + np.exp(-(a + b * tre)))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (8, 10), (10, 10), (1, 1), (17, 40)])
def test_wilson_interval_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)
    low, high = wilson_interval(k, n, confidence=0.8)
    assert expected.low <= low <= k / n <= high <= expected.high  # narrower at a lower level, holds the rate


def test_wilson_interval_golden_value():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)


def test_capture_range_recovers_a_known_r50():
    """Flags drawn from σ(4 − 0.05 x): R50 = 80 mm; the fit is the penalised MLE (checked with scipy)."""
    tre, ok = _logistic_draws(3000, 4.0, -0.05, seed=1)
    capture = capture_range(tre, ok, np.arange(0.0, 201.0, 20.0), resamples=300)
    assert capture.r50_mm == pytest.approx(80.0, abs=3.0)
    assert capture.slope_per_mm == pytest.approx(-0.05, rel=0.1)
    low, high = capture.r50_ci_mm
    assert low < capture.r50_mm < high
    assert low < 80.0 < high
    assert high - low < 10.0

    z, y, ridge = tre / LOGISTIC_SCALE_MM, ok.astype(float), 1e-3

    def loss(theta):
        eta = theta[0] + theta[1] * z
        return -(y * eta - np.logaddexp(0.0, eta)).sum() + 0.5 * ridge * (theta**2).sum()

    best = minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-9}).x
    assert capture.intercept == pytest.approx(best[0], rel=1e-5)
    assert capture.slope_per_mm == pytest.approx(best[1] / LOGISTIC_SCALE_MM, rel=1e-5)


def test_capture_range_bins_count_rates_and_intervals():
    tre = [1.0, 5.0, 15.0, 20.0, 25.0, 99.0]  # 20 mm is the last edge: the last bin; 99 mm is outside
    ok = [True, False, True, True, False, True]
    capture = capture_range(tre, ok, [0.0, 10.0, 20.0, 30.0, 40.0], resamples=10)
    assert capture.counts == (2, 1, 2, 0)
    assert capture.successes == (1, 1, 1, 0)
    assert capture.rates == (0.5, 1.0, 0.5, None)
    assert capture.intervals[0] == wilson_interval(1, 2)
    assert capture.intervals[3] is None
    assert capture.trials == 6  # the fit uses every trial
    document = capture.to_dict()
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["bin_edges_mm"] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert document["rate_intervals"][3] is None
    np.testing.assert_allclose(
        capture.success_probability([0.0, 50.0]),
        1 / (1 + np.exp(-(capture.intercept + capture.slope_per_mm * np.array([0.0, 50.0])))),
    )


def test_capture_range_of_separated_trials_puts_r50_in_the_gap():
    tre = np.linspace(0.0, 100.0, 21)  # successes up to 45 mm, failures from 50 mm
    capture = capture_range(tre, tre < 48.0, [0.0, 50.0, 100.0], resamples=200)
    assert 45.0 < capture.r50_mm < 50.0
    assert capture.slope_per_mm < 0
    assert all(math.isfinite(v) for v in (capture.intercept, capture.slope_per_mm, *capture.r50_ci_mm))
    assert capture.r50_ci_mm[0] <= capture.r50_mm <= capture.r50_ci_mm[1]
    assert capture.r50_ci_mm[0] > 35.0
    assert capture.r50_ci_mm[1] < 60.0


def test_capture_range_when_every_trial_succeeds_or_fails():
    tre = np.linspace(0.0, 100.0, 11)
    every = capture_range(tre, np.ones(11, bool), [0.0, 100.0], resamples=50)
    assert every.r50_mm == math.inf  # the fit never falls to 50 %
    assert every.slope_per_mm >= 0
    assert math.isfinite(every.intercept)
    assert every.r50_ci_mm == (math.inf, math.inf)
    assert every.to_dict()["r50_mm"] is None
    assert every.r50_text() == "∞ mm [∞, ∞]"
    none = capture_range(tre, np.zeros(11, bool), [0.0, 100.0], resamples=50)
    assert none.r50_mm == 0.0  # below 50 % already at 0 mm
    assert none.r50_ci_mm == (0.0, 0.0)
    assert none.to_dict()["r50_mm"] == 0.0


def test_capture_range_bootstrap_is_seeded():
    tre, ok = _logistic_draws(60, 3.0, -0.04, seed=2)
    a = capture_range(tre, ok, [0.0, 100.0, 200.0], seed=7, resamples=100)
    b = capture_range(torch.tensor(tre), torch.tensor(ok), [0.0, 100.0, 200.0], seed=7, resamples=100)
    c = capture_range(tre, ok, [0.0, 100.0, 200.0], seed=8, resamples=100)
    assert a == b
    assert a.r50_mm == c.r50_mm
    assert a.r50_ci_mm != c.r50_ci_mm
    assert a.r50_ci_mm[0] <= a.r50_mm <= a.r50_ci_mm[1]
    assert a.r50_text() == f"{a.r50_mm:.0f} mm [{a.r50_ci_mm[0]:.0f}, {a.r50_ci_mm[1]:.0f}]"


@pytest.mark.parametrize(
    ("tre", "ok", "edges", "options", "match"),
    [
        ([1.0, 2.0], [True], [0.0, 5.0], {}, "2 initial TREs but 1 success values"),
        ([], [], [0.0, 5.0], {}, "at least one trial"),
        ([[1.0]], [[True]], [0.0, 5.0], {}, r"initial_tre_mm: expected shape \(N,\)"),
        ([1.0, -2.0], [True, False], [0.0, 5.0], {}, "finite values >= 0"),
        ([1.0, math.nan], [True, False], [0.0, 5.0], {}, "finite values >= 0"),
        ([1.0], [True], [5.0], {}, "edges_mm: expected at least two increasing"),
        ([1.0], [True], [5.0, 1.0], {}, "edges_mm: expected at least two increasing"),
        ([1.0], [True], [0.0, 5.0], {"resamples": 0}, "resamples: expected an int >= 1"),
        ([1.0], [True], [0.0, 5.0], {"seed": -1}, "seed: expected an int >= 0"),
        ([1.0], [True], [0.0, 5.0], {"confidence": 1.0}, r"confidence: expected a number in \(0, 1\)"),
        ([1.0], [True], [0.0, 5.0], {"ridge": 0.0}, "ridge: expected a positive number"),
    ],
)
def test_capture_range_errors(tre, ok, edges, options, match):
    with pytest.raises(ValueError, match=match):
        capture_range(tre, ok, edges, **options)


@pytest.mark.parametrize(
    ("args", "match"),
    [((1, 0), "trials >= 1"), ((3, 2), r"0 <= successes <= trials \(2\)"), ((1, 2, 0.0), "confidence")],
)
def test_wilson_interval_errors(args, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(*args)


def test_capture_range_that_rises_with_the_initial_error_has_an_infinite_r50():
    """One early failure among successes: the fit rises, success never falls to 50 % past any point."""
    initial = np.linspace(5.0, 195.0, 24)
    success = np.ones(24, dtype=bool)
    success[1] = False
    capture = capture_range(initial, success, np.arange(0.0, 201.0, 25.0), resamples=200)
    assert capture.slope_per_mm > 0
    assert capture.r50_mm == math.inf
    assert capture.r50_text().startswith("∞ mm")
