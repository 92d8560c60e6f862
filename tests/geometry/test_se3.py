"""Tests for xrender.geometry.se3: pose algebra, exp/log, distances, the geodesic gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _host_reads import HostReads
from scipy.spatial.transform import Rotation
from torch.autograd import gradcheck

from xrender.geometry.se3 import (
    compose,
    double_geodesic_distance,
    geodesic_gradient,
    invert,
    make_pose,
    pose_rotation,
    pose_translation,
    retract,
    se3_exp,
    se3_log,
    se3_log_distance,
    skew,
    so3_angle,
    transform_points,
    unskew,
)

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_poses(n: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    R = torch.tensor(Rotation.random(n, random_state=seed).as_matrix(), dtype=dtype)
    t = 50 * torch.randn(n, 3, dtype=dtype, generator=gen(seed))
    return make_pose(R, t)


def rotvec_matrix(axis, angle: float) -> torch.Tensor:
    axis = np.asarray(axis, dtype=float)
    return torch.tensor(Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix())


def twist_matrix(xi: torch.Tensor) -> torch.Tensor:
    """The 4x4 element of se(3) for a (omega, v) twist, for an independent matrix_exp reference."""
    top = torch.cat([skew(xi[..., :3]), xi[..., 3:, None]], dim=-1)
    return torch.cat([top, torch.zeros(*xi.shape[:-1], 1, 4, dtype=xi.dtype)], dim=-2)


def half_turn_twists() -> torch.Tensor:
    axes = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, -2, 3]], dtype=F64)
    omega = math.pi * axes / torch.linalg.vector_norm(axes, dim=-1, keepdim=True)
    return torch.cat([omega, torch.tensor([[1.0, -2.0, 3.0]], dtype=F64).expand(4, 3)], dim=-1)


# -------------------------------------------------------------------------------------------------- conventions


def test_convention_twist_rotation_first():
    T = se3_exp(torch.tensor([0.0, 0.0, math.pi / 2, 0.0, 0.0, 0.0], dtype=F64))
    torch.testing.assert_close(pose_rotation(T), rotvec_matrix((0, 0, 1), math.pi / 2))
    torch.testing.assert_close(pose_translation(T), torch.zeros(3, dtype=F64))
    T = se3_exp(torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0], dtype=F64))
    torch.testing.assert_close(T, make_pose(torch.eye(3, dtype=F64), torch.tensor([1.0, 2.0, 3.0], dtype=F64)))


def test_convention_pose_acts_as_Rp_plus_t():
    R, t = rotvec_matrix((0, 0, 1), math.pi / 2), torch.tensor([10.0, 0.0, 0.0], dtype=F64)
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(transform_points(make_pose(R, t), p), torch.tensor([[10.0, 1.0, 0.0]], dtype=F64))


def test_convention_retract_is_body_frame():
    T = random_poses(1)[0]
    xi = torch.tensor([0.1, -0.2, 0.3, 1.0, 2.0, -3.0], dtype=F64)
    torch.testing.assert_close(retract(T, xi), T @ se3_exp(xi))


# -------------------------------------------------------------------------------------------------- pose algebra


def test_make_pose_layout_and_accessors():
    R, t = rotvec_matrix((1, 2, 3), 0.7), torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    T = make_pose(R, t)
    torch.testing.assert_close(T[:3, :3], R)
    torch.testing.assert_close(T[:3, 3], t)
    torch.testing.assert_close(T[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64))
    torch.testing.assert_close(pose_rotation(T), R)
    torch.testing.assert_close(pose_translation(T), t)


def test_make_pose_broadcasts():
    R = torch.eye(3, dtype=F64)
    t = torch.randn(2, 5, 3, dtype=F64, generator=gen(1))
    T = make_pose(R, t)
    assert T.shape == (2, 5, 4, 4)
    torch.testing.assert_close(T[..., :3, 3], t)


def test_compose_order_and_invert():
    A, B, C = random_poses(3, seed=2)
    p = torch.randn(7, 3, dtype=F64, generator=gen(2))
    torch.testing.assert_close(
        transform_points(compose(A, B, C), p), transform_points(A, transform_points(B, transform_points(C, p)))
    )
    torch.testing.assert_close(compose(A), A)
    torch.testing.assert_close(invert(A), torch.linalg.inv(A))
    torch.testing.assert_close(compose(A, invert(A)), torch.eye(4, dtype=F64))


def test_compose_broadcasts():
    A = random_poses(3, seed=3).reshape(3, 1, 4, 4)
    B = random_poses(4, seed=4)
    out = compose(A, B)
    assert out.shape == (3, 4, 4, 4)
    torch.testing.assert_close(out[2, 1], A[2, 0] @ B[1])


def test_transform_points_matches_homogeneous_product():
    T = random_poses(2, seed=5)
    p = torch.randn(2, 9, 3, dtype=F64, generator=gen(5))
    homogeneous = torch.cat([p, torch.ones(2, 9, 1, dtype=F64)], dim=-1)
    torch.testing.assert_close(transform_points(T, p), (homogeneous @ T.transpose(-1, -2))[..., :3])


def test_skew_unskew():
    v, u = torch.randn(2, 4, 3, dtype=F64, generator=gen(6))
    torch.testing.assert_close((skew(v) @ u[..., None])[..., 0], torch.linalg.cross(v, u, dim=-1))
    torch.testing.assert_close(unskew(skew(v)), v)
    torch.testing.assert_close(skew(v).transpose(-1, -2), -skew(v))


# -------------------------------------------------------------------------------------------------- exp / log


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-5, 0.299, 0.301, 0.999, 1.001, 2.0, math.pi - 1e-4])
def test_exp_matches_matrix_exp_and_log_inverts(angle):
    xi = torch.randn(8, 6, dtype=F64, generator=gen(7))
    omega = xi[:, :3] / torch.linalg.vector_norm(xi[:, :3], dim=-1, keepdim=True) * angle
    xi = torch.cat([omega, 20 * xi[:, 3:]], dim=-1)
    T = se3_exp(xi)
    torch.testing.assert_close(T, torch.linalg.matrix_exp(twist_matrix(xi)))
    torch.testing.assert_close(se3_log(T), xi, rtol=1e-9, atol=1e-9)


def test_log_exp_round_trip_random_poses():
    T = random_poses(30, seed=8)
    torch.testing.assert_close(se3_exp(se3_log(T)), T)


def test_identity():
    torch.testing.assert_close(se3_exp(torch.zeros(6, dtype=F64)), torch.eye(4, dtype=F64))
    torch.testing.assert_close(se3_log(torch.eye(4, dtype=F64)), torch.zeros(6, dtype=F64))


def test_log_at_half_turn():
    xi = half_turn_twists()
    T = se3_exp(xi)
    log = se3_log(T)
    torch.testing.assert_close(torch.linalg.vector_norm(log[:, :3], dim=-1), torch.full((4,), math.pi, dtype=F64))
    torch.testing.assert_close(se3_exp(log), T)


def test_exp_log_float32_accuracy():
    xi = torch.randn(50, 6, generator=gen(9))
    T = se3_exp(xi)
    assert T.dtype == torch.float32
    torch.testing.assert_close(se3_exp(se3_log(T)), T, atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------------------------------- distances


def test_so3_angle_values():
    for angle in (0.0, 1e-8, 1e-3, 1.0, 3.0, math.pi - 1e-7, math.pi):
        R = rotvec_matrix((1, 2, -3), angle)
        torch.testing.assert_close(so3_angle(R), torch.tensor(angle, dtype=F64), rtol=1e-8, atol=1e-15)
    A, B = random_poses(2, seed=10)[:, :3, :3]
    torch.testing.assert_close(so3_angle(A, B), so3_angle(A.T @ B))


def test_distance_properties():
    T = random_poses(60, seed=11)
    A, B, C = T[:20], T[20:40], T[40:]
    for dist in (
        lambda x, y: so3_angle(x[..., :3, :3], y[..., :3, :3]),
        se3_log_distance,
        lambda x, y: double_geodesic_distance(x, y, radius=100.0),
    ):
        torch.testing.assert_close(dist(A, B), dist(B, A))
        torch.testing.assert_close(dist(A, A), torch.zeros(20, dtype=F64), atol=1e-12, rtol=0)
        assert bool((dist(A, B) > 0).all())
    ra, rb, rc = A[:, :3, :3], B[:, :3, :3], C[:, :3, :3]
    assert bool((so3_angle(ra, rc) <= so3_angle(ra, rb) + so3_angle(rb, rc) + 1e-12).all())
    assert bool((so3_angle(ra, rb) <= math.pi).all())


def test_double_geodesic_parts():
    R = rotvec_matrix((0, 1, 0), 0.3)
    pure_rotation = make_pose(R, torch.zeros(3, dtype=F64))
    eye = torch.eye(4, dtype=F64)
    torch.testing.assert_close(
        double_geodesic_distance(eye, pure_rotation, radius=200.0), torch.tensor(60.0, dtype=F64)
    )
    shifted = make_pose(torch.eye(3, dtype=F64), torch.tensor([3.0, 4.0, 0.0], dtype=F64))
    torch.testing.assert_close(double_geodesic_distance(eye, shifted, radius=200.0), torch.tensor(5.0, dtype=F64))
    radius = torch.tensor([1.0, 2.0], dtype=F64)
    both = double_geodesic_distance(eye, make_pose(R, torch.tensor([0.0, 0.0, 0.4], dtype=F64)), radius)
    torch.testing.assert_close(both, torch.sqrt((radius * 0.3) ** 2 + 0.16))


def test_se3_log_distance_is_twist_norm():
    A, B = random_poses(2, seed=12)
    torch.testing.assert_close(se3_log_distance(A, B), torch.linalg.vector_norm(se3_log(torch.linalg.inv(A) @ B)))


@pytest.mark.parametrize(
    "dist",
    [
        lambda a, b: so3_angle(a[..., :3, :3], b[..., :3, :3]),
        se3_log_distance,
        lambda a, b: double_geodesic_distance(a, b, 80.0),
    ],
)
def test_distance_gradients(dist):
    A, B = random_poses(2, seed=13)
    assert gradcheck(dist, (A.clone().requires_grad_(), B.clone().requires_grad_()))
    same = A.clone().requires_grad_(True)
    value = dist(same, A)
    value.backward()
    torch.testing.assert_close(value.detach(), torch.tensor(0.0, dtype=F64), atol=1e-12, rtol=0)
    assert bool(torch.isfinite(same.grad).all())
    torch.testing.assert_close(same.grad, torch.zeros_like(same.grad))


# -------------------------------------------------------------------------------------------------- geodesic gradient


def test_geodesic_gradient_step_reaches_target():
    T, T_target = random_poses(10, seed=14).reshape(2, 5, 4, 4)
    g = geodesic_gradient(T, T_target)
    torch.testing.assert_close(retract(T, -g / 2), T_target)


def _autograd_gradient(T: torch.Tensor, T_target: torch.Tensor) -> torch.Tensor:
    xi = torch.zeros(6, dtype=F64, requires_grad=True)
    loss = (se3_log(invert(T_target) @ retract(T, xi)) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, xi)
    return grad


def test_geodesic_gradient_equals_autograd_for_pure_rotation_or_translation():
    T = random_poses(1, seed=15)[0]
    rotation = make_pose(rotvec_matrix((1, -1, 2), 1.2), torch.zeros(3, dtype=F64))
    translation = make_pose(torch.eye(3, dtype=F64), torch.tensor([4.0, -7.0, 2.5], dtype=F64))
    for delta in (rotation, translation):
        T_target = T @ delta
        torch.testing.assert_close(geodesic_gradient(T, T_target), _autograd_gradient(T, T_target))


def test_geodesic_gradient_differs_for_general_pose():
    T = random_poses(1, seed=16)[0]
    T_target = T @ se3_exp(torch.tensor([0.5, 0.2, -0.4, 10.0, -5.0, 3.0], dtype=F64))
    difference = geodesic_gradient(T, T_target) - _autograd_gradient(T, T_target)
    assert float(difference.abs().max()) > 1e-3  # no bi-invariant metric on SE(3)


def test_geodesic_gradient_zero_at_target():
    T = random_poses(3, seed=17)
    torch.testing.assert_close(geodesic_gradient(T, T), torch.zeros(3, 6, dtype=F64))


# -------------------------------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize(
    ("fn", "make_inputs"),
    [
        (se3_exp, lambda: (torch.tensor([0.3, -0.5, 0.8, 1.0, -2.0, 0.5], dtype=F64),)),
        (se3_exp, lambda: (torch.tensor([0.0, 0.0, 0.0, 1.0, -2.0, 0.5], dtype=F64),)),
        (se3_exp, lambda: (torch.tensor([1e-3, 2e-3, 0.0, 1.0, -2.0, 0.5], dtype=F64),)),
        (se3_log, lambda: (random_poses(1, seed=18)[0],)),
        (se3_log, lambda: (torch.eye(4, dtype=F64),)),
        (se3_log, lambda: (se3_exp(torch.tensor([0.0, 3.1, 0.0, 1.0, 2.0, 3.0], dtype=F64)),)),
        (retract, lambda: (random_poses(1, seed=19)[0], torch.tensor([0.1, 0.2, 0.3, 1.0, 2.0, 3.0], dtype=F64))),
        (geodesic_gradient, lambda: tuple(random_poses(2, seed=20))),
        (invert, lambda: (random_poses(1, seed=21)[0],)),
        (transform_points, lambda: (random_poses(1, seed=22)[0], torch.randn(4, 3, dtype=F64, generator=gen(22)))),
        (make_pose, lambda: (random_poses(1, seed=23)[0, :3, :3], torch.randn(3, dtype=F64, generator=gen(23)))),
        (compose, lambda: tuple(random_poses(3, seed=24))),
    ],
)
def test_gradcheck(fn, make_inputs):
    assert gradcheck(fn, tuple(x.clone().requires_grad_() for x in make_inputs()))


# -------------------------------------------------------------------------------------------------- batching, dtype


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (se3_exp, "twist"),
        (se3_log, "pose"),
        (invert, "pose"),
        (lambda T: so3_angle(T[..., :3, :3]), "pose"),
        (lambda T: se3_log_distance(T, torch.eye(4, dtype=T.dtype)), "pose"),
        (lambda T: double_geodesic_distance(T, torch.eye(4, dtype=T.dtype), 50.0), "pose"),
        (lambda T: geodesic_gradient(T, torch.eye(4, dtype=T.dtype)), "pose"),
        (lambda T: transform_points(T, torch.ones(5, 3, dtype=T.dtype)), "pose"),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_equals_loop_and_dtype(fn, kind, dtype):
    if kind == "twist":
        x = torch.randn(2, 3, 6, dtype=dtype, generator=gen(25))
    else:
        x = random_poses(6, seed=25, dtype=dtype).reshape(2, 3, 4, 4)
    out = fn(x)
    assert out.dtype == dtype
    looped = torch.stack([torch.stack([fn(x[i, j]) for j in range(3)]) for i in range(2)])
    torch.testing.assert_close(out, looped)


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fn", "good", "bad_shape", "name"),
    [
        (se3_exp, torch.zeros(6), (3,), "xi"),
        (se3_log, torch.eye(4), (3, 3), "T"),
        (invert, torch.eye(4), (4, 3), "T"),
        (skew, torch.zeros(3), (6,), "v"),
        (unskew, torch.eye(3), (4, 4), "K"),
        (pose_rotation, torch.eye(4), (3, 4), "T"),
        (pose_translation, torch.eye(4), (4,), "T"),
        (so3_angle, torch.eye(3), (4, 4), "Ra"),
    ],
)
def test_wrong_shape_raises_and_no_value_is_read(fn, good, bad_shape, name):
    with pytest.raises(ValueError, match=rf"{name}: expected shape .* got \("):
        fn(torch.zeros(bad_shape))
    with HostReads() as reads:  # values are checked at entry points, not here
        fn(good)
    assert reads.count == 0, reads.sites
    x = good.clone()
    x[0] = math.nan
    assert not torch.isfinite(fn(x)).all()  # NaN in, NaN out


def test_two_argument_errors():
    eye = torch.eye(4)
    with pytest.raises(ValueError, match=r"points: expected shape \(\*, N, 3\), got \(4, 2\)"):
        transform_points(eye, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"t: expected shape \(\*, 3\), got \(4,\)"):
        make_pose(torch.eye(3), torch.zeros(4))
    with pytest.raises(ValueError, match="make_pose: expected broadcastable batch shapes"):
        make_pose(torch.eye(3).expand(2, 3, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="compose: expected at least one pose, got none"):
        compose()
    with pytest.raises(ValueError, match=r"xi: expected shape \(\*, 6\)"):
        retract(eye, torch.zeros(5))
    with pytest.raises(ValueError, match=r"T_target: expected shape \(\*, 4, 4\)"):
        geodesic_gradient(eye, torch.eye(3))


@pytest.mark.parametrize("radius", [0.0, -5.0, math.nan, math.inf])
def test_double_geodesic_bad_radius_raises(radius):
    with pytest.raises(ValueError, match=r"radius: expected finite values > 0, got"):
        double_geodesic_distance(torch.eye(4), torch.eye(4), radius)


def test_double_geodesic_tensor_radius_keeps_pose_dtype():
    A, B = random_poses(2, seed=26, dtype=torch.float32)
    out = double_geodesic_distance(A, B, torch.tensor(10.0, dtype=F64))
    assert out.dtype == torch.float32
