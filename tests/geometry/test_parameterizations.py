"""Tests for xrender.geometry.parameterizations: the registry and every built-in parameterization."""

from __future__ import annotations

import math

import pytest
import torch
from _host_reads import HostReads
from scipy.spatial.transform import Rotation
from torch.autograd import gradcheck

from xrender.geometry import parameterizations as registry
from xrender.geometry.parameterizations import (
    Parameterization,
    available_parameterizations,
    get_parameterization,
    params_from_pose,
    pose_from_params,
    register_parameterization,
)
from xrender.geometry.rotations import EULER_CONVENTIONS, euler_to_matrix, matrix_to_quaternion
from xrender.geometry.se3 import make_pose, se3_exp, se3_log

F64 = torch.float64
BUILT_IN = {"euler": 6, "axis_angle": 6, "quaternion": 7, "rotation_6d": 9, "matrix": 12, "se3_log": 6}


def rotation_about(axis, angle: float) -> torch.Tensor:
    axis = torch.tensor(axis, dtype=F64)
    return torch.tensor(Rotation.from_rotvec((axis / axis.norm() * angle).numpy()).as_matrix())


def sample_poses() -> torch.Tensor:
    """Random poses, the identity and 180° turns about x, y, z and an oblique axis, with translations."""
    rotations = torch.cat(
        [
            torch.tensor(Rotation.random(12, random_state=0).as_matrix()),
            torch.eye(3, dtype=F64)[None],
            torch.stack([rotation_about(a, math.pi) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, -2, 3))]),
        ]
    )
    t = 30 * torch.randn(len(rotations), 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    t[12] = 0.0  # one exact identity pose
    return make_pose(rotations, t)


def assert_valid_pose(T: torch.Tensor) -> None:
    R = T[..., :3, :3]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=T.dtype).expand_as(R))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(T.shape[:-2], dtype=T.dtype))
    torch.testing.assert_close(T[..., 3, :], torch.tensor([0.0, 0, 0, 1], dtype=T.dtype).expand_as(T[..., 3, :]))


# -------------------------------------------------------------------------------------------------- registry


def test_available_names_and_sizes():
    assert available_parameterizations() == sorted(BUILT_IN)
    for name, size in BUILT_IN.items():
        p = get_parameterization(name)
        assert isinstance(p, Parameterization)
        assert (p.name, p.num_params) == (name, size)


def test_euler_default_and_options_recorded():
    p = get_parameterization("euler")
    assert dict(p.options) == {"convention": "ZYX", "degrees": False}
    assert get_parameterization("euler") == p  # equality ignores the closures
    assert get_parameterization("euler", convention="xyz") != p
    assert hash(p) == hash(get_parameterization("euler"))


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"unknown parameterization 'eulr'; available: axis_angle, euler, matrix, "):
        get_parameterization("eulr")
    with pytest.raises(ValueError, match="unknown parameterization"):
        pose_from_params(torch.zeros(6), "nope")


def test_unknown_option_raises_type_error():
    with pytest.raises(TypeError, match=r"'euler': unknown option\(s\) \['order'\]; accepted options: \['convention'"):
        get_parameterization("euler", order="xyz")
    with pytest.raises(TypeError, match=r"'quaternion': unknown option\(s\) \['degrees'\]; accepted options: none"):
        get_parameterization("quaternion", degrees=True)


def test_bad_euler_convention_raises_at_construction():
    with pytest.raises(ValueError, match=r"convention: expected 3 axis letters.*got 'xyy'"):
        get_parameterization("euler", convention="xyy")


def test_register_custom_parameterization(monkeypatch):
    monkeypatch.setattr(registry._REGISTRY, "_factories", dict(registry._REGISTRY._factories))

    def translation_only(scale: float = 1.0) -> Parameterization:
        def to_pose(params):
            return make_pose(torch.eye(3, dtype=params.dtype), scale * params)

        return Parameterization("translation", 3, to_pose, lambda T: T[..., :3, 3] / scale, (("scale", scale),))

    register_parameterization("translation", translation_only)
    assert "translation" in available_parameterizations()
    T = pose_from_params(torch.tensor([1.0, 2.0, 3.0], dtype=F64), "translation", scale=2.0)
    torch.testing.assert_close(T[:3, 3], torch.tensor([2.0, 4.0, 6.0], dtype=F64))
    with pytest.raises(ValueError, match="parameterization 'translation' is already registered; pass overwrite=True"):
        register_parameterization("translation", translation_only)
    register_parameterization("translation", translation_only, overwrite=True)
    register_parameterization("broken", lambda: "not a parameterization")
    with pytest.raises(TypeError, match="factory returned str, not Parameterization"):
        get_parameterization("broken")
    with pytest.raises(TypeError, match="factory: expected a callable, got int"):
        register_parameterization("x", 3)
    with pytest.raises(ValueError, match="parameterization name: expected a non-empty string"):
        register_parameterization("", translation_only)


# -------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_round_trip_pose_params_pose(name):
    T = sample_poses()
    p = get_parameterization(name)
    params = p.from_pose(T)
    assert params.shape == (len(T), BUILT_IN[name])
    back = p.to_pose(params)
    assert_valid_pose(back)
    torch.testing.assert_close(back, T)


@pytest.mark.parametrize("name", ["axis_angle", "rotation_6d", "matrix", "euler"])
def test_round_trip_params_pose_params(name):
    p = get_parameterization(name)
    params = p.from_pose(sample_poses()[:12])  # random poses: canonical parameters, no ambiguity
    torch.testing.assert_close(p.from_pose(p.to_pose(params)), params)


@pytest.mark.parametrize("convention", EULER_CONVENTIONS)
def test_euler_round_trip_every_convention(convention):
    p = get_parameterization("euler", convention=convention)
    T = sample_poses()
    torch.testing.assert_close(p.to_pose(p.from_pose(T)), T)
    proper = convention[0].lower() == convention[2].lower()
    middle = 0.0 if proper else math.pi / 2
    locked = torch.tensor([[0.4, middle, -0.9, 1.0, 2.0, 3.0], [0.4, middle + 1e-7, -0.9, 1.0, 2.0, 3.0]], dtype=F64)
    T_locked = p.to_pose(locked)
    params = p.from_pose(T_locked)
    assert bool(torch.isfinite(params).all())
    torch.testing.assert_close(p.to_pose(params), T_locked)


def test_euler_degrees_option():
    params = torch.tensor([90.0, 0.0, 0.0, 1.0, 2.0, 3.0], dtype=F64)
    T = pose_from_params(params, "euler", convention="ZYX", degrees=True)
    torch.testing.assert_close(T[:3, :3], euler_to_matrix(torch.tensor([math.pi / 2, 0, 0], dtype=F64), "ZYX"))
    torch.testing.assert_close(params_from_pose(T, "euler", degrees=True), params)


def test_parameter_layouts():
    R, t = rotation_about((1, 2, 3), 0.8), torch.tensor([5.0, -6.0, 7.0], dtype=F64)
    T = make_pose(R, t)
    torch.testing.assert_close(params_from_pose(T, "matrix"), torch.cat([R.reshape(9), t]))
    torch.testing.assert_close(params_from_pose(T, "quaternion"), torch.cat([matrix_to_quaternion(R), t]))
    torch.testing.assert_close(params_from_pose(T, "rotation_6d"), torch.cat([R[:, 0], R[:, 1], t]))
    torch.testing.assert_close(params_from_pose(T, "se3_log"), se3_log(T))
    torch.testing.assert_close(pose_from_params(se3_log(T), "se3_log"), se3_exp(se3_log(T)))


def test_quaternion_is_normalized():
    q = torch.tensor([0.9, 0.1, -0.3, 0.2], dtype=F64)
    t = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    torch.testing.assert_close(
        pose_from_params(torch.cat([5 * q, t]), "quaternion"), pose_from_params(torch.cat([q, t]), "quaternion")
    )
    assert_valid_pose(pose_from_params(torch.cat([q, t]), "quaternion"))


def test_matrix_projects_to_nearest_rotation():
    noisy = torch.eye(3, dtype=F64) + 0.05 * torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    T = pose_from_params(torch.cat([noisy.reshape(9), torch.zeros(3, dtype=F64)]), "matrix")
    assert_valid_pose(T)
    U, _, Vh = torch.linalg.svd(noisy)
    torch.testing.assert_close(T[:3, :3], U @ Vh)
    reflection = torch.cat(
        [torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64)).reshape(9), torch.zeros(3, dtype=F64)]
    )
    assert_valid_pose(pose_from_params(reflection, "matrix"))


# -------------------------------------------------------------------------------------------------- gradients


GRADCHECK_CASES = [
    ("euler", {}),
    ("euler", {"convention": "zxz"}),
    ("euler", {"convention": "XYZ", "degrees": True}),
    ("axis_angle", {}),
    ("quaternion", {}),
    ("rotation_6d", {}),
    ("matrix", {}),
    ("se3_log", {}),
]


@pytest.mark.parametrize(("name", "options"), GRADCHECK_CASES)
def test_gradcheck_to_pose_and_from_pose(name, options):
    p = get_parameterization(name, **options)
    T = sample_poses()[:2]
    params = p.from_pose(T)
    assert gradcheck(p.to_pose, (params.clone().requires_grad_(),))
    assert gradcheck(p.from_pose, (T.clone().requires_grad_(),))


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_gradient_finite_at_identity(name):
    p = get_parameterization(name)
    params = p.from_pose(torch.eye(4, dtype=F64)).requires_grad_(True)
    (p.to_pose(params) * torch.arange(16.0, dtype=F64).reshape(4, 4)).sum().backward()
    assert bool(torch.isfinite(params.grad).all())
    assert bool((params.grad != 0).any())


# -------------------------------------------------------------------------------------------------- batching, dtype


@pytest.mark.parametrize("name", sorted(BUILT_IN))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_equals_loop_and_dtype(name, dtype):
    p = get_parameterization(name)
    T = sample_poses()[:6].to(dtype).reshape(2, 3, 4, 4)
    params = p.from_pose(T)
    assert params.dtype == dtype
    assert params.shape == (2, 3, p.num_params)
    poses = p.to_pose(params)
    assert poses.dtype == dtype
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(params[i, j], p.from_pose(T[i, j]))
            torch.testing.assert_close(poses[i, j], p.to_pose(params[i, j]))


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_wrong_shape_raises_and_values_are_left_to_the_entry_points(name):
    p = get_parameterization(name)
    size = BUILT_IN[name]
    with pytest.raises(ValueError, match=rf"params: expected shape \(\*, {size}\), got \(2, {size + 1}\)"):
        p.to_pose(torch.zeros(2, size + 1))
    with pytest.raises(ValueError, match=r"T: expected shape \(\*, 4, 4\), got \(3, 3\)"):
        p.from_pose(torch.eye(3))
    with HostReads() as reads:
        params = p.from_pose(torch.eye(4))
        p.to_pose(params)
    # only the rotation conversions that are undefined somewhere refuse input (see `rotations`)
    assert reads.count == {"quaternion": 1, "rotation_6d": 2}.get(name, 0), reads.sites
    bad_pose = torch.eye(4)
    bad_pose[0, 3] = math.inf
    if name != "matrix":  # the nearest-rotation SVD refuses NaN itself
        assert not torch.isfinite(p.to_pose(p.from_pose(bad_pose))).all()


def test_zero_quaternion_raises():
    params = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="q: expected a non-zero quaternion, got a quaternion of norm 0"):
        pose_from_params(params, "quaternion")
