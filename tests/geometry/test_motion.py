"""Motions about the isocentre (`xrender.geometry.motion`): the one six-number pose convention."""

from __future__ import annotations

import math

import pytest
import torch

from xrender.geometry import (
    axis_angle_to_matrix,
    get_preset,
    make_pose,
    motion_from_pose,
    perturb,
    pose_from_motion,
    project,
    standard_pose,
)
from xrender.metrics import target_registration_error

ISO = torch.tensor([10.0, -20.0, 5.0], dtype=torch.float64)
REFERENCE = standard_pose("ap", 620.0, ISO)


def test_zero_motion_is_the_reference():
    torch.testing.assert_close(pose_from_motion(torch.zeros(6, dtype=torch.float64), REFERENCE, ISO), REFERENCE)


def test_motion_round_trip_batched():
    x = torch.tensor([[10.0, -20.0, 30.0, 5.0, 6.0, -70.0], [0.0, 0.0, 179.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    back = motion_from_pose(pose_from_motion(x, REFERENCE.expand(2, 4, 4), ISO), REFERENCE.expand(2, 4, 4), ISO)
    torch.testing.assert_close(back, x)


def test_convention_motion_translation_moves_the_isocentre_right_down_and_away():
    carm = get_preset("prost")
    K = carm.intrinsics(dtype=torch.float64)
    centre = project(ISO[None], REFERENCE, K)[0]
    right = project(ISO[None], pose_from_motion(torch.tensor([0, 0, 0, 10.0, 0, 0]).double(), REFERENCE, ISO), K)[0]
    down = project(ISO[None], pose_from_motion(torch.tensor([0, 0, 0, 0, 10.0, 0]).double(), REFERENCE, ISO), K)[0]
    away = pose_from_motion(torch.tensor([0, 0, 0, 0, 0, 10.0]).double(), REFERENCE, ISO)
    assert right[0] > centre[0] + 1
    assert abs(float(right[1] - centre[1])) < 1e-9
    assert down[1] > centre[1] + 1
    assert abs(float(down[0] - centre[0])) < 1e-9
    depth = lambda pose: (torch.linalg.inv(pose) @ torch.cat([ISO, ISO.new_ones(1)]))[2]  # noqa: E731
    torch.testing.assert_close(depth(away) - depth(REFERENCE), torch.tensor(10.0, dtype=torch.float64))


def test_convention_motion_rotation_turns_about_the_isocentre_in_degrees():
    pose = pose_from_motion(torch.tensor([0, 0, 30.0, 0, 0, 0]).double(), REFERENCE, ISO)
    assert float(target_registration_error(pose, REFERENCE, ISO[None])) < 1e-9  # the isocentre stays put
    angle = torch.linalg.matrix_norm(pose[:3, :3] - REFERENCE[:3, :3])  # ‖R1 − R0‖_F = 2√2 sin(θ/2)
    torch.testing.assert_close(angle, torch.tensor(2 * math.sqrt(2) * math.sin(math.radians(15)), dtype=torch.float64))


def test_convention_motion_positive_depth_rotation_turns_image_right_toward_image_down():
    carm = get_preset("prost")
    K = carm.intrinsics(dtype=torch.float64)
    point = ISO + 50.0 * REFERENCE[:3, 0]  # 50 mm to the image right of the isocentre
    centre = project(ISO[None], REFERENCE, K)[0]
    turned = project(point[None], pose_from_motion(torch.tensor([0, 0, 90.0, 0, 0, 0]).double(), REFERENCE, ISO), K)[0]
    assert abs(float(turned[0] - centre[0])) < 1e-9
    assert turned[1] > centre[1] + 1


def test_convention_motion_rotation_is_a_rotation_vector_not_euler_angles():
    x = torch.tensor([20.0, -30.0, 40.0, 5.0, -6.0, 7.0], dtype=torch.float64)
    delta = make_pose(axis_angle_to_matrix(torch.deg2rad(x[:3])), x[3:])
    torch.testing.assert_close(pose_from_motion(x, REFERENCE, ISO), perturb(REFERENCE, delta, ISO))


def test_motion_follows_the_reference_dtype_and_is_differentiable():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64, requires_grad=True)
    pose = pose_from_motion(x, REFERENCE.float(), ISO)
    assert pose.dtype == torch.float32
    pose.sum().backward()
    assert bool(torch.isfinite(x.grad).all())


def test_motion_rejects_bad_shapes():
    with pytest.raises(ValueError, match="params"):
        pose_from_motion(torch.zeros(5), REFERENCE, ISO)
