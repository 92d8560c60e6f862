"""Registration metrics: the 3-D TRE, rotation and translation errors, reprojection distance, success."""

from __future__ import annotations

import math

import pytest
import torch

from xrender.geometry import euler_to_matrix, get_preset, make_pose, perturb, se3_exp, standard_pose
from xrender.metrics import (
    is_success,
    reprojection_distance,
    rotation_error,
    target_registration_error,
    translation_error,
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
