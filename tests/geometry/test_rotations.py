"""Tests for xrender.geometry.rotations: conventions, round trips, SciPy agreement, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _host_reads import HostReads
from scipy.spatial.transform import Rotation
from torch.autograd import gradcheck

from xrender.geometry.rotations import (
    EULER_CONVENTIONS,
    axis_angle_to_matrix,
    cube_rotations,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    nearest_rotation,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
)

F64 = torch.float64
OBLIQUE = (1.0, -2.0, 3.0)


def random_rotations(n: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.tensor(Rotation.random(n, random_state=seed).as_matrix(), dtype=dtype)


def rotation_about(axis, angle: float, dtype: torch.dtype = F64) -> torch.Tensor:
    axis = np.asarray(axis, dtype=float)
    return torch.tensor(Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix(), dtype=dtype)


def special_rotations() -> torch.Tensor:
    """Identity and 180° about x, y, z and an oblique axis, shape (5, 3, 3)."""
    half_turns = [rotation_about(a, math.pi) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1), OBLIQUE)]
    return torch.stack([torch.eye(3, dtype=F64), *half_turns])


def all_test_rotations() -> torch.Tensor:
    return torch.cat([random_rotations(20), special_rotations()])


def assert_is_rotation(R: torch.Tensor, atol: float = 1e-10) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0)


# -------------------------------------------------------------------------------------------------- conventions


def test_convention_quaternion_scalar_first():
    c = math.cos(math.pi / 4)
    q = torch.tensor([c, 0.0, 0.0, c], dtype=F64)  # 90° about +z
    R = rotation_about((0, 0, 1), math.pi / 2)
    torch.testing.assert_close(quaternion_to_matrix(q), R)
    torch.testing.assert_close(matrix_to_quaternion(R), q)


def test_convention_rotation_right_handed():
    x_hat, y_hat = torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0.0, 1, 0], dtype=F64)
    quarter = math.pi / 2
    c = math.cos(quarter / 2)
    for R in (
        axis_angle_to_matrix(torch.tensor([0.0, 0.0, quarter], dtype=F64)),
        quaternion_to_matrix(torch.tensor([c, 0.0, 0.0, c], dtype=F64)),
        euler_to_matrix(torch.tensor([quarter, 0.0, 0.0], dtype=F64), "ZYX"),
        euler_to_matrix(torch.tensor([0.0, 0.0, 90.0], dtype=F64), "xyz", degrees=True),
    ):
        torch.testing.assert_close(R @ x_hat, y_hat)


def test_convention_rotation_6d_is_first_two_columns():
    R = random_rotations(1)[0]
    d6 = matrix_to_rotation_6d(R)
    torch.testing.assert_close(d6, torch.cat([R[:, 0], R[:, 1]]))
    torch.testing.assert_close(rotation_6d_to_matrix(d6), R)


def test_euler_intrinsic_is_product_of_moving_axes():
    a = torch.tensor([0.3, -0.4, 1.2], dtype=F64)
    Rz, Ry, Rx = (
        euler_to_matrix(torch.tensor(v, dtype=F64), "xyz") for v in ([0, 0, a[0]], [0, a[1], 0], [a[2], 0, 0])
    )
    torch.testing.assert_close(euler_to_matrix(a, "ZYX"), Rz @ Ry @ Rx)
    torch.testing.assert_close(euler_to_matrix(a.flip(0), "xyz"), Rz @ Ry @ Rx)


# -------------------------------------------------------------------------------------------------- quaternions


def test_quaternion_round_trip_and_canonical_sign():
    R = all_test_rotations()
    q = matrix_to_quaternion(R)
    assert bool((q[..., 0] >= 0).all())
    torch.testing.assert_close(torch.linalg.vector_norm(q, dim=-1), torch.ones(len(R), dtype=F64))
    torch.testing.assert_close(quaternion_to_matrix(q), R)


def test_quaternion_matches_scipy():
    rs = Rotation.random(30, random_state=3)
    q_ref = torch.tensor(np.roll(rs.as_quat(), 1, axis=-1))  # SciPy is scalar last
    q_ref = torch.where(q_ref[:, :1] < 0, -q_ref, q_ref)
    torch.testing.assert_close(matrix_to_quaternion(torch.tensor(rs.as_matrix())), q_ref)


def test_quaternion_to_matrix_normalizes():
    q = torch.randn(10, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(quaternion_to_matrix(3.7 * q), quaternion_to_matrix(q))
    torch.testing.assert_close(quaternion_to_matrix(-q), quaternion_to_matrix(q))
    assert_is_rotation(quaternion_to_matrix(q))


# -------------------------------------------------------------------------------------------------- axis-angle


def test_axis_angle_matches_scipy_and_round_trips():
    rs = Rotation.random(30, random_state=4)
    R = torch.tensor(rs.as_matrix())
    omega = matrix_to_axis_angle(R)
    torch.testing.assert_close(omega, torch.tensor(rs.as_rotvec()))
    torch.testing.assert_close(axis_angle_to_matrix(omega), R)


def test_axis_angle_identity_and_half_turns():
    R = special_rotations()
    omega = matrix_to_axis_angle(R)
    torch.testing.assert_close(omega[0], torch.zeros(3, dtype=F64))
    torch.testing.assert_close(torch.linalg.vector_norm(omega[1:], dim=-1), torch.full((4,), math.pi, dtype=F64))
    torch.testing.assert_close(axis_angle_to_matrix(omega), R)


def test_axis_angle_small_angles_accurate():
    omega = torch.tensor([[1e-9, -2e-9, 3e-9], [1e-4, 2e-4, -1e-4]], dtype=F64)
    torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(omega)), omega, rtol=1e-9, atol=1e-15)


def test_axis_angle_gradient_finite_at_identity():
    omega = torch.zeros(3, dtype=F64, requires_grad=True)
    (axis_angle_to_matrix(omega) * torch.arange(9.0, dtype=F64).reshape(3, 3)).sum().backward()
    assert bool(torch.isfinite(omega.grad).all())
    R = torch.eye(3, dtype=F64, requires_grad=True)
    matrix_to_axis_angle(R).sum().backward()
    assert bool(torch.isfinite(R.grad).all())


# -------------------------------------------------------------------------------------------------- 6-D


def test_rotation_6d_round_trip():
    R = all_test_rotations()
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R)


def test_rotation_6d_gram_schmidt_gives_rotation():
    d6 = torch.randn(50, 6, dtype=F64, generator=torch.Generator().manual_seed(1))
    R = rotation_6d_to_matrix(d6)
    assert_is_rotation(R)
    a1 = d6[:, :3] / torch.linalg.vector_norm(d6[:, :3], dim=-1, keepdim=True)
    torch.testing.assert_close(R[..., :, 0], a1)  # the first column keeps its direction


# -------------------------------------------------------------------------------------------------- Euler


def test_euler_has_24_conventions():
    assert len(EULER_CONVENTIONS) == 24
    assert len(set(EULER_CONVENTIONS)) == 24


@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_matches_scipy(convention):
    rs = Rotation.random(25, random_state=5)
    R = torch.tensor(rs.as_matrix())
    ref_angles = torch.tensor(rs.as_euler(convention))
    torch.testing.assert_close(matrix_to_euler(R, convention), ref_angles)
    angles = torch.rand(25, 3, dtype=F64, generator=torch.Generator().manual_seed(6)) * 4 - 2
    ref_R = torch.tensor(Rotation.from_euler(convention, angles.numpy()).as_matrix())
    torch.testing.assert_close(euler_to_matrix(angles, convention), ref_R)


@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_round_trip_random_identity_half_turns(convention):
    R = all_test_rotations()
    angles = matrix_to_euler(R, convention)
    assert bool(torch.isfinite(angles).all())
    torch.testing.assert_close(euler_to_matrix(angles, convention), R)


@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_gimbal_lock(convention):
    proper = convention[0].lower() == convention[2].lower()
    singular = [0.0, math.pi] if proper else [math.pi / 2, -math.pi / 2]
    middles = [m + d for m in singular for d in (0.0, 1e-9, -1e-9, 1e-6, -1e-6)]
    middles = [m for m in middles if (0 <= m <= math.pi if proper else True)]
    angles = torch.tensor([[0.7, m, -1.3] for m in middles], dtype=F64)
    R = euler_to_matrix(angles, convention)
    recovered = matrix_to_euler(R, convention)
    assert bool(torch.isfinite(recovered).all())
    torch.testing.assert_close(euler_to_matrix(recovered, convention), R, atol=1e-9, rtol=0)
    # gradients are finite (if meaningless) exactly at gimbal lock
    R_leaf = R.clone().requires_grad_(True)
    matrix_to_euler(R_leaf, convention).sum().backward()
    assert bool(torch.isfinite(R_leaf.grad).all())


def test_euler_degrees():
    angles = torch.tensor([30.0, -45.0, 60.0], dtype=F64)
    R = euler_to_matrix(angles, "ZYX", degrees=True)
    torch.testing.assert_close(R, euler_to_matrix(torch.deg2rad(angles), "ZYX"))
    torch.testing.assert_close(matrix_to_euler(R, "ZYX", degrees=True), angles)


@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_gradcheck(convention):
    angles = torch.tensor([0.3, 1.1 if convention[0].lower() == convention[2].lower() else 0.4, -0.8], dtype=F64)
    assert gradcheck(lambda a: euler_to_matrix(a, convention), (angles.clone().requires_grad_(),))
    R = euler_to_matrix(angles, convention)
    assert gradcheck(lambda m: matrix_to_euler(m, convention), (R.clone().requires_grad_(),))


# -------------------------------------------------------------------------------------------------- nearest rotation


def test_nearest_rotation_keeps_rotations_and_matches_svd():
    R = all_test_rotations()
    torch.testing.assert_close(nearest_rotation(R), R)
    M = torch.randn(20, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    out = nearest_rotation(M)
    assert_is_rotation(out)
    # optimality: no random rotation is closer to M
    others = random_rotations(200, seed=9)
    best = torch.linalg.matrix_norm(M - out).unsqueeze(-1)
    assert bool((torch.linalg.matrix_norm(M[:, None] - others[None]) >= best - 1e-12).all())


def test_nearest_rotation_of_reflection_is_proper():
    M = torch.diag(torch.tensor([1.0, 2.0, -3.0], dtype=F64))
    R = nearest_rotation(M)
    assert_is_rotation(R)
    torch.testing.assert_close(R, torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=F64)))  # flips the smallest axis


def test_nearest_rotation_gradient_at_exact_rotation():
    for M in (torch.eye(3, dtype=F64), random_rotations(1)[0], torch.randn(3, 3, dtype=F64) + 2 * torch.eye(3)):
        assert gradcheck(nearest_rotation, (M.clone().requires_grad_(),))


# -------------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("fn", "make_input"),
    [
        (quaternion_to_matrix, lambda: torch.tensor([0.8, -0.3, 0.4, 0.2], dtype=F64)),
        (matrix_to_quaternion, lambda: random_rotations(1)[0]),
        (matrix_to_quaternion, lambda: rotation_about(OBLIQUE, math.pi - 1e-3)),
        (axis_angle_to_matrix, lambda: torch.tensor([0.3, -0.2, 0.9], dtype=F64)),
        (axis_angle_to_matrix, lambda: torch.zeros(3, dtype=F64)),
        (matrix_to_axis_angle, lambda: random_rotations(1, seed=2)[0]),
        (matrix_to_axis_angle, lambda: torch.eye(3, dtype=F64)),
        (rotation_6d_to_matrix, lambda: torch.tensor([1.0, 0.2, -0.1, 0.3, 0.9, 0.4], dtype=F64)),
        (matrix_to_rotation_6d, lambda: random_rotations(1, seed=3)[0]),
    ],
)
def test_gradcheck(fn, make_input):
    assert gradcheck(fn, (make_input().requires_grad_(),))


# -------------------------------------------------------------------------------------------------- batching, dtype


@pytest.mark.parametrize(
    ("fn", "tail"),
    [
        (quaternion_to_matrix, (4,)),
        (matrix_to_quaternion, (3, 3)),
        (axis_angle_to_matrix, (3,)),
        (matrix_to_axis_angle, (3, 3)),
        (rotation_6d_to_matrix, (6,)),
        (matrix_to_rotation_6d, (3, 3)),
        (lambda x: euler_to_matrix(x, "XYZ"), (3,)),
        (lambda x: matrix_to_euler(x, "zxz"), (3, 3)),
        (nearest_rotation, (3, 3)),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_equals_loop_and_dtype(fn, tail, dtype):
    if tail == (3, 3):
        x = random_rotations(6, seed=7, dtype=dtype).reshape(2, 3, 3, 3)
    else:
        x = torch.randn(2, 3, *tail, dtype=dtype, generator=torch.Generator().manual_seed(8))
    out = fn(x)
    assert out.dtype == dtype
    looped = torch.stack([torch.stack([fn(x[i, j]) for j in range(3)]) for i in range(2)])
    torch.testing.assert_close(out, looped)


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fn", "bad_shape", "name"),
    [
        (quaternion_to_matrix, (3,), "q"),
        (matrix_to_quaternion, (3, 4), "R"),
        (axis_angle_to_matrix, (4,), "omega"),
        (matrix_to_axis_angle, (4, 4), "R"),
        (rotation_6d_to_matrix, (5,), "d6"),
        (matrix_to_rotation_6d, (2, 3), "R"),
        (lambda x: euler_to_matrix(x, "xyz"), (2,), "angles"),
        (lambda x: matrix_to_euler(x, "xyz"), (3,), "R"),
        (nearest_rotation, (3, 2), "M"),
    ],
)
def test_wrong_shape_raises_and_only_undefined_conversions_read_values(fn, bad_shape, name):
    with pytest.raises(ValueError, match=rf"{name}: expected shape .* got \("):
        fn(torch.ones(bad_shape, dtype=F64))
    good_shape = {"q": (4,), "omega": (3,), "d6": (6,), "angles": (3,)}.get(name, (3, 3))
    x = torch.eye(3, dtype=F64) if good_shape == (3, 3) else torch.ones(good_shape, dtype=F64)
    if name == "d6":
        x = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=F64)
    with HostReads() as reads:
        fn(x)
    # the zero quaternion and (with eps=None) a degenerate or non-finite 6-D pair are refused; nothing else is read
    assert reads.count == {"q": 1, "d6": 2}.get(name, 0), reads.sites
    x[0] = math.nan
    if name == "d6":
        with pytest.raises(ValueError, match=r"d6: expected finite values, got NaN or inf"):
            fn(x)
    elif name != "M":  # nearest_rotation: the SVD itself refuses NaN
        assert not torch.isfinite(fn(x)).all()  # NaN in, NaN out


def test_zero_quaternion_raises():
    q = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]], dtype=F64)
    with pytest.raises(ValueError, match="q: expected a non-zero quaternion, got a quaternion of norm 0"):
        quaternion_to_matrix(q)


def test_degenerate_6d_raises():
    with pytest.raises(ValueError, match="d6: expected two linearly independent 3-vectors"):
        rotation_6d_to_matrix(torch.tensor([1.0, 2.0, 3.0, 2.0, 4.0, 6.0], dtype=F64))
    with pytest.raises(ValueError, match="d6: expected two linearly independent 3-vectors"):
        rotation_6d_to_matrix(torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=F64))


@pytest.mark.parametrize("convention", ["xyw", "xxy", "XyZ", "xy", "xyzx", "", 3])
def test_unknown_euler_convention_raises(convention):
    with pytest.raises(ValueError, match=r"convention: expected 3 axis letters.*ZYX.*got"):
        euler_to_matrix(torch.zeros(3, dtype=F64), convention)
    with pytest.raises(ValueError, match=r"lowercase \(extrinsic\).*uppercase \(intrinsic\)"):
        matrix_to_euler(torch.eye(3, dtype=F64), convention)


def _axis_rotation(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3  # cyclic, so each rotation is right-handed
    R = torch.eye(3, dtype=torch.float64)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def test_convention_euler_lowercase_extrinsic_uppercase_intrinsic():
    a, b, c = 0.3, -0.5, 1.1
    Rx, Ry, Rz = _axis_rotation(0, a), _axis_rotation(1, b), _axis_rotation(2, c)
    angles = torch.tensor([a, b, c], dtype=torch.float64)
    # extrinsic "xyz": about fixed x, then fixed y, then fixed z → Rz Ry Rx
    torch.testing.assert_close(euler_to_matrix(angles, "xyz"), Rz @ Ry @ Rx)
    # intrinsic "XYZ": about x, then the moved y, then the moved z → Rx Ry Rz
    torch.testing.assert_close(euler_to_matrix(angles, "XYZ"), Rx @ Ry @ Rz)


# --------------------------------------------------------------------------------------------------
# The rotations of the cube
# --------------------------------------------------------------------------------------------------


def test_cube_rotations_are_the_24_proper_symmetries_of_the_cube_identity_first():
    R = cube_rotations()
    assert R.shape == (24, 3, 3)
    assert R.dtype == torch.float64
    assert torch.equal(R[0], torch.eye(3, dtype=torch.float64))
    assert len({tuple(r.flatten().tolist()) for r in R}) == 24
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=torch.float64).expand(24, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(24, dtype=torch.float64))
    corners = torch.tensor([[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)])
    for r in R:  # each maps the cube's corners onto its corners
        assert {tuple(c) for c in (corners @ r.T.float()).tolist()} == {tuple(c) for c in corners.tolist()}


def test_cube_rotations_form_a_group():
    R = cube_rotations()
    members = {tuple(r.flatten().tolist()) for r in R}
    products = (R[:, None] @ R[None]).reshape(-1, 3, 3)
    assert {tuple(p.flatten().tolist()) for p in products} == members  # closed under products ...
    assert {tuple(r.T.flatten().tolist()) for r in R} == members  # ... and inverses


def test_cube_rotations_lie_within_62_8_degrees_of_any_rotation():
    q = torch.randn(20000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    M = quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))
    cosines = (torch.einsum("nij,kij->nk", M, cube_rotations()) - 1) / 2  # cos of the angle to each
    farthest = torch.rad2deg(torch.arccos(cosines.clamp(-1, 1).amax(dim=1))).max()
    assert 55.0 < float(farthest) <= 62.8


def test_cube_rotations_follow_the_dtype_and_device():
    R = cube_rotations(torch.float32, "cpu")
    assert R.dtype == torch.float32
    assert R.device.type == "cpu"
    assert torch.equal(R, cube_rotations().float())
