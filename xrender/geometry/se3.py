r"""Rigid transforms (the group SE(3)): build, compose, invert, apply, exp/log, distances, gradients.

Conventions:

* A pose is a homogeneous matrix $T = \begin{bmatrix} R & t \\ 0 & 1 \end{bmatrix}$
  acting on column vectors, $p' = R p + t$. In xrender a pose maps camera-frame points to
  world points (mm), but every function here is a generic rigid transform. The last row of an
  input pose is assumed to be $(0, 0, 0, 1)$ and is not read.
* `compose` multiplies left to right: ``compose(A, B)(p) = A(B(p))``.
* A twist $\xi \in \mathfrak{se}(3)$ is ordered **rotation first**,
  $\xi = (\omega, v) = (\omega_1, \omega_2, \omega_3, v_1, v_2, v_3)$, with $\omega$ in
  radians (a rotation vector) and $v$ in the unit of the translations (mm).
* Tangent vectors at a pose are **body-frame** twists: the retraction is
  $\operatorname{retract}(T, \xi) = T \exp(\xi)$.

All functions take any number of leading batch dimensions (broadcast between arguments), keep
the input's device and dtype, and are differentiable, with finite gradients at the identity.
They check shapes but read no values (NaN in, NaN out): values are checked at entry points.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_positive, check_shape
from xrender.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "skew",
    "unskew",
    "make_pose",
    "pose_rotation",
    "pose_translation",
    "compose",
    "invert",
    "transform_points",
    "se3_exp",
    "se3_log",
    "retract",
    "so3_angle",
    "se3_log_distance",
    "double_geodesic_distance",
    "geodesic_gradient",
]


def _safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` with a zero (not infinite) gradient at ``x = 0``."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def _safe_norm(x: Tensor) -> Tensor:
    """Euclidean norm over the last axis, with a zero gradient at the zero vector."""
    return _safe_sqrt((x * x).sum(-1))


def _assemble(R: Tensor, t: Tensor) -> Tensor:
    """Unchecked `make_pose`."""
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat((R.expand(*batch, 3, 3), t.expand(*batch, 3)[..., None]), dim=-1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=top.dtype, device=top.device).expand(*batch, 1, 4)
    return torch.cat((top, bottom), dim=-2)


def _inverse(T: Tensor) -> Tensor:
    """Unchecked `invert`."""
    Rt = T[..., :3, :3].transpose(-1, -2)
    return _assemble(Rt, -(Rt @ T[..., :3, 3:])[..., 0])


# --------------------------------------------------------------------------------------------------
# Building and applying poses
# --------------------------------------------------------------------------------------------------


def skew(v: Float[Tensor, "*B 3"]) -> Float[Tensor, "*B 3 3"]:
    r"""The hat map: the skew-symmetric matrix $[v]_\times$ with $[v]_\times u = v \times u$.

    $$
    [v]_\times = \begin{bmatrix} 0 & -v_3 & v_2 \\ v_3 & 0 & -v_1 \\ -v_2 & v_1 & 0 \end{bmatrix}
    $$

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import skew
        >>> v, u = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
        >>> (skew(v) @ u).tolist()  # the cross product v × u
        [-3.0, 6.0, -3.0]
        >>> torch.equal(skew(v).T, -skew(v))
        True
    """
    check_shape(v, "* 3", "v")
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = ((zero, -z, y), (z, zero, -x), (-y, x, zero))
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def unskew(K: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 3"]:
    r"""The vee map, inverse of `skew`: the vector of the skew part $(K - K^\top)/2$.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import skew, unskew
        >>> unskew(skew(torch.tensor([1.0, 2.0, 3.0]))).tolist()
        [1.0, 2.0, 3.0]
    """
    check_shape(K, "* 3 3", "K")
    A = 0.5 * (K - K.transpose(-1, -2))
    return torch.stack((A[..., 2, 1], A[..., 0, 2], A[..., 1, 0]), dim=-1)


def make_pose(R: Float[Tensor, "*B 3 3"], t: Float[Tensor, "*B 3"]) -> Float[Tensor, "*B 4 4"]:
    r"""The 4x4 pose $\begin{bmatrix} R & t \\ 0 & 1 \end{bmatrix}$ ($p' = R p + t$).

    Args:
        R: rotation matrices (not checked for orthogonality).
        t: translations; its batch shape broadcasts with ``R``'s.

    Raises:
        ValueError: wrong shapes or batch shapes that do not broadcast.

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose
        >>> T = make_pose(torch.eye(3), torch.tensor([10.0, 20.0, 30.0]))
        >>> T.tolist()
        [[1.0, 0.0, 0.0, 10.0], [0.0, 1.0, 0.0, 20.0], [0.0, 0.0, 1.0, 30.0], [0.0, 0.0, 0.0, 1.0]]
        >>> make_pose(torch.eye(3).expand(5, 3, 3), torch.zeros(3)).shape  # batch shapes broadcast
        torch.Size([5, 4, 4])
    """
    check_shape(R, "* 3 3", "R")
    check_shape(t, "* 3", "t")
    try:
        torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"make_pose: expected broadcastable batch shapes, got R {tuple(R.shape)} and t {tuple(t.shape)}"
        ) from None
    return _assemble(R, t)


def pose_rotation(T: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 3 3"]:
    """The rotation block $R$ of a pose (a view of ``T``).

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, pose_rotation
        >>> T = make_pose(2 * torch.eye(3), torch.tensor([10.0, 20.0, 30.0]))
        >>> pose_rotation(T).diagonal().tolist()
        [2.0, 2.0, 2.0]
    """
    return check_shape(T, "* 4 4", "T")[..., :3, :3]


def pose_translation(T: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 3"]:
    """The translation $t$ of a pose (a view of ``T``).

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, pose_translation
        >>> pose_translation(make_pose(torch.eye(3), torch.tensor([10.0, 20.0, 30.0]))).tolist()
        [10.0, 20.0, 30.0]
    """
    return check_shape(T, "* 4 4", "T")[..., :3, 3]


def compose(*Ts: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 4 4"]:
    r"""Matrix product $T_1 T_2 \cdots T_n$ of poses, with broadcasting of batch shapes.

    The rightmost pose acts first: ``transform_points(compose(A, B), p)`` equals
    ``transform_points(A, transform_points(B, p))``.

    Raises:
        ValueError: no pose given, wrong shapes.

    Examples:
        >>> import math
        >>> import torch
        >>> from xrender.geometry import axis_angle_to_matrix, compose, make_pose, transform_points
        >>> turn = make_pose(axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2])), torch.zeros(3))  # 90° about z
        >>> shift = make_pose(torch.eye(3), torch.tensor([1.0, 0.0, 0.0]))  # 1 mm along x
        >>> p = torch.zeros(1, 3)
        >>> transform_points(compose(turn, shift), p).round().int().tolist()  # shift first, then turn x to y
        [[0, 1, 0]]
        >>> transform_points(compose(shift, turn), p).round().int().tolist()  # turn the origin, then shift
        [[1, 0, 0]]
    """
    if not Ts:
        raise ValueError("compose: expected at least one pose, got none")
    out = check_shape(Ts[0], "* 4 4", "Ts[0]")
    for n, T in enumerate(Ts[1:], start=1):
        out = out @ check_shape(T, "* 4 4", f"Ts[{n}]")
    return out


def invert(T: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 4 4"]:
    r"""Inverse of a rigid transform in closed form, $T^{-1} = [R^\top, -R^\top t]$.

    Assumes $R$ is a rotation (no general matrix inverse is taken).

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import compose, euler_to_matrix, invert, make_pose
        >>> R = euler_to_matrix(torch.tensor([10.0, 20.0, 30.0]).double(), "xyz", degrees=True)
        >>> T = make_pose(R, torch.tensor([1.0, 2.0, 3.0]).double())
        >>> torch.allclose(compose(T, invert(T)), torch.eye(4, dtype=torch.float64))
        True
        >>> invert(make_pose(torch.eye(3), torch.tensor([1.0, 2.0, 3.0])))[:3, 3].tolist()
        [-1.0, -2.0, -3.0]
    """
    return _inverse(check_shape(T, "* 4 4", "T"))


def transform_points(T: Float[Tensor, "*B 4 4"], points: Float[Tensor, "*B N 3"]) -> Float[Tensor, "*B N 3"]:
    r"""Apply poses to point sets: $p' = R p + t$ for every point.

    Args:
        T: poses, batch shape ``*B``.
        points: points, shape ``(*B, N, 3)``; ``*B`` broadcasts with ``T``'s batch shape.

    Raises:
        ValueError: wrong shapes.

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, transform_points
        >>> half_turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))  # 180° about z
        >>> T = make_pose(half_turn, torch.tensor([0.0, 0.0, 5.0]))
        >>> transform_points(T, torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])).tolist()
        [[-1.0, -2.0, 8.0], [0.0, 0.0, 5.0]]
    """
    check_shape(T, "* 4 4", "T")
    check_shape(points, "* N 3", "points")
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


# --------------------------------------------------------------------------------------------------
# Exponential and logarithm
# --------------------------------------------------------------------------------------------------

# Taylor coefficients in theta^2 of the three 0/0 functions of the closed forms.
_SERIES_A = (1 / 2, -1 / 24, 1 / 720, -1 / 40320, 1 / 3628800, -1 / 479001600)  # (1 - cos t) / t^2
_SERIES_B = (1 / 6, -1 / 120, 1 / 5040, -1 / 362880, 1 / 39916800, -1 / 6227020800)  # (t - sin t) / t^3
# (1 - (t/2) cot(t/2)) / t^2 = sum_n |B_2n| t^(2n-2) / (2n)!  (Bernoulli numbers)
_SERIES_C = (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160, 691 / 1307674368000)


def _closed_a(t: Tensor) -> Tensor:
    return 2 * torch.sin(0.5 * t) ** 2 / (t * t)


def _closed_b(t: Tensor) -> Tensor:
    return (t - torch.sin(t)) / (t * t * t)


def _closed_c(t: Tensor) -> Tensor:
    half = 0.5 * t
    return (1 - half * torch.cos(half) / torch.sin(half)) / (t * t)


def _angle_function(theta2: Tensor, series: tuple[float, ...], closed: Callable[[Tensor], Tensor]) -> Tensor:
    """Evaluate a smooth even function of theta from theta^2: Taylor series below a switch angle, else closed form.

    The switch (0.3 rad in float64, 1 rad otherwise) keeps the closed form's cancellation error below about
    100 ulp and the truncated series' error below rounding. Both branches see a substituted, harmless argument
    where they are not selected, so the unselected branch never puts NaN into the gradient.
    """
    switch = 0.3 if theta2.dtype == torch.float64 else 1.0
    small = theta2 < switch * switch
    t2 = torch.where(small, theta2, torch.zeros_like(theta2))
    poly = torch.full_like(t2, series[-1])
    for coefficient in reversed(series[:-1]):
        poly = poly * t2 + coefficient
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    return torch.where(small, poly, closed(theta))


def se3_exp(xi: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B 4 4"]:
    r"""Exponential map $\mathfrak{se}(3) \to SE(3)$ in closed form.

    For $\xi = (\omega, v)$ with $\theta = \|\omega\|$ and $K = [\omega]_\times$:

    $$
    R = \exp(K), \qquad t = V v, \qquad
    V = I + \frac{1 - \cos\theta}{\theta^2} K + \frac{\theta - \sin\theta}{\theta^3} K^2
    $$

    with the coefficients evaluated by their Taylor series for small $\theta$, so the map is
    exact and differentiable at $\omega = 0$ (where $t = v$).

    Args:
        xi: twists, rotation first: $(\omega_1, \omega_2, \omega_3, v_1, v_2, v_3)$,
            $\omega$ in radians.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import math
        >>> import torch
        >>> from xrender.geometry import se3_exp
        >>> se3_exp(torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0]))[:3, 3].tolist()  # no rotation: t = v
        [1.0, 2.0, 3.0]
        >>> T = se3_exp(torch.tensor([0.0, 0.0, math.pi / 2, 0.0, 0.0, 0.0], dtype=torch.float64))
        >>> (T[:3, :3] @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).round().int().tolist()  # +x turns to +y
        [0, 1, 0]
    """
    check_shape(xi, "* 6", "xi")
    omega, v = xi[..., :3], xi[..., 3:]
    theta2 = (omega * omega).sum(-1)
    K = skew(omega)
    a = _angle_function(theta2, _SERIES_A, _closed_a)[..., None, None]
    b = _angle_function(theta2, _SERIES_B, _closed_b)[..., None, None]
    V = torch.eye(3, dtype=xi.dtype, device=xi.device) + a * K + b * (K @ K)
    return _assemble(axis_angle_to_matrix(omega), (V @ v[..., None])[..., 0])


def se3_log(T: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 6"]:
    r"""Logarithm map $SE(3) \to \mathfrak{se}(3)$, the inverse of `se3_exp`.

    $\omega = \log R$ with $\theta = \|\omega\| \in [0, \pi]$, and $v = V^{-1} t$ with

    $$
    V^{-1} = I - \tfrac12 K + \frac{1 - \tfrac{\theta}{2}\cot\tfrac{\theta}{2}}{\theta^2} K^2,
    $$

    which stays finite at $\theta = \pi$. At $\theta = \pi$ the sign of $\omega$
    is arbitrary; either one satisfies ``se3_exp(se3_log(T)) == T``.

    Returns:
        Twists $(\omega, v)$, rotation first.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import se3_exp, se3_log
        >>> xi = torch.tensor([0.1, -0.2, 0.3, 4.0, 5.0, 6.0], dtype=torch.float64)
        >>> torch.allclose(se3_log(se3_exp(xi)), xi)
        True
        >>> se3_log(torch.eye(4)).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    check_shape(T, "* 4 4", "T")
    omega = matrix_to_axis_angle(T[..., :3, :3])
    theta2 = (omega * omega).sum(-1)
    K = skew(omega)
    c = _angle_function(theta2, _SERIES_C, _closed_c)[..., None, None]
    V_inv = torch.eye(3, dtype=T.dtype, device=T.device) - 0.5 * K + c * (K @ K)
    return torch.cat((omega, (V_inv @ T[..., :3, 3:])[..., 0]), dim=-1)


def retract(T: Float[Tensor, "*B 4 4"], xi: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B 4 4"]:
    r"""Move a pose along a body-frame twist: $T \exp(\xi)$ (batch shapes broadcast).

    Raises:
        ValueError: wrong shapes.

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, retract
        >>> T = make_pose(torch.diag(torch.tensor([-1.0, -1.0, 1.0])), torch.tensor([10.0, 0.0, 0.0]))
        >>> step = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])  # 1 mm along the body's own +x
        >>> retract(T, step)[:3, 3].tolist()  # which is -x in the world
        [9.0, 0.0, 0.0]
    """
    return check_shape(T, "* 4 4", "T") @ se3_exp(xi)


# --------------------------------------------------------------------------------------------------
# Distances and the geodesic gradient
# --------------------------------------------------------------------------------------------------


def so3_angle(Ra: Float[Tensor, "*B 3 3"], Rb: Float[Tensor, "*B 3 3"] | None = None) -> Float[Tensor, "*B"]:
    r"""Geodesic distance on SO(3): the rotation angle of $R_a^\top R_b$, in radians in $[0, \pi]$.

    Computed as $\operatorname{atan2}(\|\operatorname{vee}(M - M^\top)\|/2, (\operatorname{tr} M - 1)/2)$
    with $M = R_a^\top R_b$, accurate at both ends of the range (a bare
    $\arccos$ has an infinite derivative at 0 and loses digits near 0 and $\pi$).
    The gradient is finite everywhere and 0 at zero distance (and at exactly $\pi$).

    Args:
        Ra: rotation matrices.
        Rb: rotation matrices, batch shape broadcasting with ``Ra``'s; ``None`` measures the angle
            of ``Ra`` itself (its distance to the identity).

    Raises:
        ValueError: wrong shapes.

    Examples:
        >>> import torch
        >>> from xrender.geometry import euler_to_matrix, so3_angle
        >>> Ra = euler_to_matrix(torch.tensor([30.0, 0.0, 0.0], dtype=torch.float64), "xyz", degrees=True)
        >>> Rb = euler_to_matrix(torch.tensor([0.0, 0.0, 40.0], dtype=torch.float64), "xyz", degrees=True)
        >>> round(so3_angle(Ra).rad2deg().item(), 6)  # the angle of Ra itself
        30.0
        >>> round(so3_angle(Ra, Rb).rad2deg().item(), 4)
        49.6284
    """
    M = check_shape(Ra, "* 3 3", "Ra")
    if Rb is not None:
        M = Ra.transpose(-1, -2) @ check_shape(Rb, "* 3 3", "Rb")
    sin2 = torch.stack((M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]), -1)
    cos2 = M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1
    return torch.atan2(_safe_norm(sin2), cos2)  # both terms are 2x the sine and cosine


def se3_log_distance(Ta: Float[Tensor, "*B 4 4"], Tb: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B"]:
    r"""Left-invariant SE(3) distance $\|\log(T_a^{-1} T_b)\|$ of the twist $(\omega, v)$.

    Mixes radians and translation units (mm) with weight 1. The gradient is 0 (not NaN) at
    identical poses.

    Raises:
        ValueError: wrong shapes.

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, se3_log_distance
        >>> Ta = torch.eye(4, dtype=torch.float64)
        >>> Tb = make_pose(torch.eye(3, dtype=torch.float64), torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64))
        >>> se3_log_distance(Ta, Tb).item()  # a pure translation: its length in mm
        5.0
    """
    D = invert(Ta) @ check_shape(Tb, "* 4 4", "Tb")
    return _safe_norm(se3_log(D))


def double_geodesic_distance(
    Ta: Float[Tensor, "*B 4 4"], Tb: Float[Tensor, "*B 4 4"], radius: float | Tensor
) -> Float[Tensor, "*B"]:
    r"""Rotation and translation error combined into one length (mm).

    $$
    d = \sqrt{(r\,\theta)^2 + \|t_a - t_b\|^2}, \qquad \theta = \text{so3\_angle}(R_a, R_b)
    $$

    $r\theta$ is the arc length travelled by a point at distance ``radius`` from the centre
    of rotation when it is rotated by $\theta$; a common choice of ``radius`` is the size of
    the imaged object or half the source-to-detector distance.

    Args:
        Ta: poses.
        Tb: poses, batch shape broadcasting with ``Ta``'s.
        radius: length in mm (> 0), a float or a tensor broadcasting with the batch shape.

    Returns:
        The distance in mm; its gradient is 0 (not NaN) at identical poses.

    Raises:
        ValueError: wrong shapes or a radius that is not finite and > 0.

    Examples:
        >>> import torch
        >>> from xrender.geometry import axis_angle_to_matrix, double_geodesic_distance, make_pose
        >>> Ta = torch.eye(4, dtype=torch.float64)
        >>> R = axis_angle_to_matrix(torch.tensor([0.1, 0.0, 0.0]).double())  # 0.1 rad about x
        >>> Tb = make_pose(R, torch.tensor([3.0, 4.0, 0.0]).double())
        >>> round(double_geodesic_distance(Ta, Tb, radius=100.0).item(), 4)  # sqrt((100 mm · 0.1)² + (5 mm)²)
        11.1803
    """
    check_shape(Ta, "* 4 4", "Ta")
    check_shape(Tb, "* 4 4", "Tb")
    check_positive(radius, "radius")
    theta = so3_angle(Ta[..., :3, :3], Tb[..., :3, :3])
    if isinstance(radius, Tensor):
        radius = radius.to(dtype=theta.dtype, device=theta.device)  # keep the poses' dtype
    dt = Ta[..., :3, 3] - Tb[..., :3, 3]
    return _safe_sqrt((radius * theta) ** 2 + (dt * dt).sum(-1))


def geodesic_gradient(T: Float[Tensor, "*B 4 4"], T_target: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B 6"]:
    r"""Riemannian gradient at ``T`` of the squared geodesic distance to ``T_target``, as a body twist.

    $$
    g = -2 \log(T^{-1} T_\text{target}) \in \mathfrak{se}(3), \quad \text{ordered } (\omega, v)
    $$

    This is the training target of ProST (Gao et al., MICCAI 2020). It is exact in the sense that
    ``retract(T, -g / 2) == T_target``: a step of $-g/2$ along the geodesic
    $T\exp(s\xi)$ reaches the target. It equals the Euclidean gradient of
    $\xi \mapsto \|\log(T_\text{target}^{-1}\, T \exp(\xi))\|^2$ at $\xi = 0$ when
    $T^{-1}T_\text{target}$ is a pure rotation or a pure translation. For general relative
    poses the two differ: SE(3) has no bi-invariant metric, so the curves $T\exp(s\xi)$ are not
    geodesics of the left-invariant metric and $g$ is not that distance's gradient.

    Raises:
        ValueError: wrong shapes.

    Examples:
        >>> import torch
        >>> from xrender.geometry import geodesic_gradient, retract, se3_exp
        >>> T = se3_exp(torch.tensor([0.1, 0.2, 0.3, 1.0, 2.0, 3.0], dtype=torch.float64))
        >>> target = se3_exp(torch.tensor([-0.2, 0.1, 0.0, 4.0, 0.0, -1.0], dtype=torch.float64))
        >>> g = geodesic_gradient(T, target)
        >>> torch.allclose(retract(T, -g / 2), target)  # a step of -g/2 reaches the target
        True
        >>> geodesic_gradient(T, T).abs().max().item()  # zero at the target
        0.0
    """
    D = invert(T) @ check_shape(T_target, "* 4 4", "T_target")
    return -2 * se3_log(D)
