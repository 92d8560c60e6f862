"""TRE: the 3-D target registration error."""

from __future__ import annotations

import math

import pytest
import torch

from xrender.geometry import euler_to_matrix, make_pose, se3_exp
from xrender.metrics import target_registration_error

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
