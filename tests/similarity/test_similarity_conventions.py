"""Conventions of similarities, pose gradients and TRE (written down in docs/conventions.md)."""

from __future__ import annotations

import math

import torch

from xrender.geometry import get_preset, perturb, project, se3_exp, standard_pose, world_to_camera
from xrender.metrics import target_registration_error
from xrender.similarity import NCCLoss, get_similarity
from xrender.similarity.gradient_loss import pose_gradient, target_gradient

ISO = torch.tensor([5.0, -7.0, 11.0], dtype=torch.float64)
CARM = get_preset("prost")
AP = standard_pose("ap", CARM.sid, ISO)
K = CARM.intrinsics(dtype=torch.float64)


def _moved(twist):
    return perturb(AP, se3_exp(torch.tensor(twist, dtype=torch.float64)), ISO)


def test_convention_similarity_is_higher_is_better_and_its_loss_is_upper_bound_minus_it():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    noisy = x + 0.3 * torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    similarity = get_similarity("ncc")
    assert float(similarity(x, x)) > float(similarity(noisy, x))
    assert similarity.bounds[1] == 1.0
    assert torch.allclose(NCCLoss()(noisy, x), similarity.bounds[1] - similarity(noisy, x))


def test_convention_twist_is_rotation_first_then_translation_along_u_v_depth():
    """ξ = (ω, v): v moves the volume right (+u), down (+v) and away from the source (+depth), in mm."""
    iso_pixel = project(ISO[None], AP, K)[0]
    right, down = (
        project(ISO[None], _moved([0, 0, 0, 10, 0, 0]), K)[0],
        project(ISO[None], _moved([0, 0, 0, 0, 10, 0]), K)[0],
    )
    assert float(right[0] - iso_pixel[0]) > 0
    assert abs(float(right[1] - iso_pixel[1])) < 1e-9
    assert float(down[1] - iso_pixel[1]) > 0
    assert abs(float(down[0] - iso_pixel[0])) < 1e-9
    depth = world_to_camera(ISO[None], _moved([0, 0, 0, 0, 0, 10]))[0, 2] - world_to_camera(ISO[None], AP)[0, 2]
    assert math.isclose(float(depth), 10.0, abs_tol=1e-9)
    # ω about the optical axis (camera z) turns a point right of the isocentre toward image-down
    point = ISO + AP[:3, 0] * 50  # 50 mm along camera +x (image right) from the isocentre
    turned = project(point[None], _moved([0, 0, 0.1, 0, 0, 0]), K)[0]
    assert float(turned[1] - project(point[None], AP, K)[0, 1]) > 0
    assert torch.allclose(project(ISO[None], _moved([0, 0, 0.1, 0, 0, 0]), K), iso_pixel[None])  # about the isocentre


def test_convention_pose_gradient_is_of_the_distance_and_points_away_from_the_truth():
    """g = ∂(−score)/∂ξ; for score = −(squared distance to the truth), g = g_geo = −2 log δ*, and −g/2 lands on it."""
    truth = _moved([0, 0, 0, 4, -3, 12])

    def score(T):
        return -(target_gradient(T, truth, ISO) ** 2).sum(-1) / 4

    g = pose_gradient(score, AP[None], ISO)
    assert torch.allclose(g, target_gradient(AP[None], truth, ISO), atol=1e-9)
    assert torch.allclose(g[0, 3:], -2 * torch.tensor([4.0, -3.0, 12.0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(perturb(AP, se3_exp(-g[0] / 2), ISO), truth, atol=1e-9)


def test_convention_tre_is_a_3d_distance_in_mm_in_the_camera_frame():
    points = ISO[None] + torch.tensor([[0.0, 0, 0], [40.0, 0, 0]], dtype=torch.float64)
    shifted = _moved([0, 0, 0, 0, 0, 10])  # 10 mm along depth: invisible to a reprojection error at the centre
    assert math.isclose(float(target_registration_error(shifted, AP, points)), 10.0, rel_tol=1e-9)
