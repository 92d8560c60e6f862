"""Perturbations about the isocentre in the camera-aligned frame."""

import math

import pytest
import torch
from _host_reads import HostReads

from xrender.geometry.camera import world_to_camera
from xrender.geometry.perturbation import isocenter_frame, perturb, perturbation_between
from xrender.geometry.rotations import euler_to_matrix
from xrender.geometry.se3 import make_pose
from xrender.geometry.views import standard_pose

ISO = torch.tensor([5.0, -10.0, 20.0], dtype=torch.float64)
POSE = standard_pose("ap", 620.0, ISO)


def _delta(angles_deg, translation):
    angles = torch.tensor(angles_deg, dtype=torch.float64)
    return make_pose(euler_to_matrix(angles, "xyz", degrees=True), torch.tensor(translation, dtype=torch.float64))


def test_identity_perturbation_keeps_pose():
    torch.testing.assert_close(perturb(POSE, torch.eye(4, dtype=torch.float64), ISO), POSE)


def test_convention_translation_moves_volume_along_camera_axes():
    before = world_to_camera(ISO[None], POSE)[0]
    after = world_to_camera(ISO[None], perturb(POSE, _delta([0, 0, 0], [5.0, -3.0, 10.0]), ISO))[0]
    # the isocentre moved +5 mm along u (image right), -3 mm along v (up), +10 mm away from the source
    torch.testing.assert_close(after - before, torch.tensor([5.0, -3.0, 10.0], dtype=torch.float64))


def test_convention_rotation_turns_volume_about_isocenter():
    pose = perturb(POSE, _delta([0, 0, 90.0], [0, 0, 0]), ISO)
    torch.testing.assert_close(world_to_camera(ISO[None], pose), world_to_camera(ISO[None], POSE))
    # a volume point 10 mm along the camera's x (image right) of the isocentre ...
    point = ISO + 10.0 * POSE[:3, 0]
    moved = world_to_camera(point[None], pose)[0] - world_to_camera(ISO[None], pose)[0]
    # ... is seen, after +90° about the camera's z, 10 mm along y (image down): x turns toward y
    torch.testing.assert_close(moved, torch.tensor([0.0, 10.0, 0.0], dtype=torch.float64))


def test_isocenter_frame_has_camera_axes():
    frame = isocenter_frame(POSE, ISO)
    torch.testing.assert_close(frame[:3, :3], POSE[:3, :3])
    torch.testing.assert_close(frame[:3, 3], ISO)


def test_perturbation_between_inverts_perturb():
    g = torch.Generator().manual_seed(0)
    angles = torch.randn(6, 3, generator=g, dtype=torch.float64) * 30
    translations = torch.randn(6, 3, generator=g, dtype=torch.float64) * 40
    deltas = make_pose(euler_to_matrix(angles, "xyz", degrees=True), translations)
    poses = perturb(POSE.expand(6, 4, 4), deltas, ISO)
    torch.testing.assert_close(perturbation_between(poses, POSE.expand(6, 4, 4), ISO), deltas)
    torch.testing.assert_close(poses[3], perturb(POSE, deltas[3], ISO))  # batched == one by one


def test_gradcheck_perturb():
    delta = _delta([3.0, -4.0, 5.0], [1.0, 2.0, 3.0]).requires_grad_()
    pose = POSE.clone().requires_grad_()
    iso = ISO.clone().requires_grad_()
    assert torch.autograd.gradcheck(perturb, (pose, delta, iso))


def test_bad_perturbation_inputs():
    with pytest.raises(ValueError, match=r"delta: expected shape \(\*, 4, 4\)"):
        perturb(POSE, torch.eye(3, dtype=torch.float64), ISO)
    with HostReads() as reads:  # a hot path: values are checked at entry points
        moved = perturb(POSE, torch.full((4, 4), math.nan, dtype=torch.float64), ISO)
    assert reads.count == 0
    assert moved.isnan().all()
