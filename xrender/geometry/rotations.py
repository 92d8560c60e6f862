r"""Conversions between representations of 3-D rotations (the group SO(3)).

Conventions (the project's, used by every function here):

* A rotation matrix acts on **column vectors**, $p' = R p$, and is right-handed: a positive
  angle about $+\hat z$ maps $\hat x$ to $\hat y$.
* Quaternions are Hamilton quaternions stored **scalar first**, $(w, x, y, z)$.
  `matrix_to_quaternion` returns the representative with $w \ge 0$.
* Axis-angle is the rotation vector $\omega = \theta \hat n$ (unit axis times the angle in
  radians), i.e. the $\mathfrak{so}(3)$ logarithm; $\|\omega\| \in [0, \pi]$ on output.
* The 6-D representation (Zhou et al., CVPR 2019) is the first two **columns** of $R$,
  concatenated: $(r_{11}, r_{21}, r_{31}, r_{12}, r_{22}, r_{32})$.
* Euler angles follow SciPy's ``Rotation.from_euler``: three axis letters, lowercase = extrinsic
  (about the fixed axes, first letter applied first), uppercase = intrinsic (about the moving axes).
  Angles are in radians unless ``degrees=True``.

Every function accepts any number of leading batch dimensions, keeps the input's device and
dtype, and is differentiable with autograd. Shapes are checked; values are not (NaN in, NaN out),
except where a conversion is undefined: a zero quaternion, and a degenerate 6-D pair with
``eps=None``.
"""

from __future__ import annotations

import itertools
import math

import torch
from jaxtyping import Float
from torch import Tensor
from torch.autograd.function import once_differentiable

from xrender._checks import check_finite, check_shape

# kornia is imported by the functions that use it: `import kornia` loads the whole package (0.2 s),
# and `import xrender` loads no heavy library before it is used (tests/test_import_cost.py).

__all__ = [
    "EULER_CONVENTIONS",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "euler_to_matrix",
    "matrix_to_euler",
    "nearest_rotation",
    "cube_rotations",
]

_TAIT_BRYAN = ("xyz", "xzy", "yxz", "yzx", "zxy", "zyx")
_PROPER_EULER = ("xyx", "xzx", "yxy", "yzy", "zxz", "zyz")

#: The 24 accepted Euler conventions: lowercase = extrinsic, uppercase = intrinsic (SciPy's rule).
EULER_CONVENTIONS: tuple[str, ...] = tuple(
    s for case in (str.lower, str.upper) for s in map(case, _TAIT_BRYAN + _PROPER_EULER)
)

_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}

# A middle Euler angle within this many machine epsilons (rad) of its singular value is treated as gimbal lock.
# SciPy uses a fixed 1e-7 rad, which moves the reconstructed matrix by up to ~1e-7 in float64; at rounding level
# the decomposition stays exact (an unlocked decomposition is exact too, just with one arbitrary outer angle).
_GIMBAL_ULPS = 10


# --------------------------------------------------------------------------------------------------
# Quaternions and axis-angle (kornia's conversions; measured batched, finite-gradient at the identity
# and gradcheck-clean near pi in float64, so they are used as they are)
# --------------------------------------------------------------------------------------------------


def quaternion_to_matrix(q: Float[Tensor, "*B 4"]) -> Float[Tensor, "*B 3 3"]:
    r"""Rotation matrix of a quaternion.

    Args:
        q: Hamilton quaternion, scalar first $(w, x, y, z)$. It need not be unit: it is
            divided by its norm first, so $q$ and $s q$ (any $s \ne 0$) give the
            same matrix.

    Returns:
        $R$ with $p' = R p$; e.g. $(\cos 45°, 0, 0, \sin 45°)$ is +90° about
        $+\hat z$.

    Raises:
        ValueError: wrong shape or a zero quaternion (which is not a rotation).

    Examples:
        >>> import math
        >>> import torch
        >>> from xrender.geometry import quaternion_to_matrix
        >>> q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]).double()  # +90° about z
        >>> (quaternion_to_matrix(q) @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).round().int().tolist()
        [0, 1, 0]
        >>> torch.allclose(quaternion_to_matrix(3 * q), quaternion_to_matrix(q))  # any scale
        True
    """
    from kornia.geometry import conversions as kconv

    check_shape(q, "* 4", "q")
    norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        # kornia maps the zero quaternion silently to the identity; we refuse it.
        raise ValueError("q: expected a non-zero quaternion, got a quaternion of norm 0")
    return kconv.quaternion_to_rotation_matrix(q / norm)


def matrix_to_quaternion(R: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 4"]:
    r"""Unit quaternion of a rotation matrix, scalar first, with the canonical sign $w \ge 0$.

    Args:
        R: rotation matrices (not checked for orthogonality).

    Returns:
        $(w, x, y, z)$ with $w \ge 0$. At exactly 180° ($w = 0$) both
        $\pm q$ satisfy the rule; one of them is returned.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import euler_to_matrix, matrix_to_quaternion
        >>> R = euler_to_matrix(torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64), "xyz", degrees=True)
        >>> matrix_to_quaternion(R).round(decimals=4).tolist()  # (w, x, y, z), w >= 0
        [0.7071, 0.0, 0.0, 0.7071]
    """
    from kornia.geometry import conversions as kconv

    check_shape(R, "* 3 3", "R")
    # kornia picks the branch by the largest of (trace, diagonal), which is stable at 180°, but does
    # not canonicalise the sign (measured: w = -0.087 for 170° about (1, 2, -3)), so we flip it.
    q = kconv.rotation_matrix_to_quaternion(R)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(omega: Float[Tensor, "*B 3"]) -> Float[Tensor, "*B 3 3"]:
    r"""Rotation matrix of a rotation vector (the $\mathfrak{so}(3)$ exponential, Rodrigues).

    $$
    R = \exp([\omega]_\times) = I + \frac{\sin\theta}{\theta}[\omega]_\times
    $$
        + \frac{1 - \cos\theta}{\theta^2}[\omega]_\times^2, \qquad \theta = \|\omega\|

    Args:
        omega: rotation vector, axis times angle in radians (right-hand rule). Any norm.

    Returns:
        The rotation matrix; exact and differentiable at $\omega = 0$.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import math
        >>> import torch
        >>> from xrender.geometry import axis_angle_to_matrix
        >>> R = axis_angle_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0], dtype=torch.float64))  # +90° about x
        >>> (R @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)).round().int().tolist()  # y turns to z
        [0, 0, 1]
        >>> torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))
        True
    """
    from kornia.geometry import conversions as kconv

    return kconv.axis_angle_to_rotation_matrix(check_shape(omega, "* 3", "omega"))


def matrix_to_axis_angle(R: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 3"]:
    r"""Rotation vector of a rotation matrix (the principal $\mathfrak{so}(3)$ logarithm).

    Args:
        R: rotation matrices.

    Returns:
        $\omega = \theta \hat n$ with $\theta \in [0, \pi]$ in radians. At exactly
        $\theta = \pi$ the sign of the axis is arbitrary (both give the same matrix), so the
        map is not differentiable there; everywhere else, including the identity, it is.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import axis_angle_to_matrix, matrix_to_axis_angle
        >>> omega = torch.tensor([0.3, -0.4, 1.2], dtype=torch.float64)  # 1.3 rad
        >>> torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(omega)), omega)
        True
        >>> round(matrix_to_axis_angle(axis_angle_to_matrix(omega)).norm().item(), 6)
        1.3
    """
    from kornia.geometry import conversions as kconv

    return kconv.rotation_matrix_to_axis_angle(check_shape(R, "* 3 3", "R"))


# --------------------------------------------------------------------------------------------------
# 6-D representation
# --------------------------------------------------------------------------------------------------


def rotation_6d_to_matrix(d6: Float[Tensor, "*B 6"], eps: float | None = None) -> Float[Tensor, "*B 3 3"]:
    r"""Rotation matrix from the 6-D representation by Gram–Schmidt (Zhou et al. 2019).

    With $a_1 = d_{0:3}$, $a_2 = d_{3:6}$: $b_1 = a_1/\|a_1\|$,
    $b_2 \propto a_2 - (b_1 \cdot a_2) b_1$, $b_3 = b_1 \times b_2$ and
    $R = [b_1 \; b_2 \; b_3]$ (columns).

    Args:
        d6: two 3-vectors, the first and second column of $R$ up to scale and shear.
        eps: ``None`` checks the input (shape, NaN/inf, a degenerate pair: a host sync); a
            number skips the checks and divides by ``max(norm, eps)`` instead — for a network's
            output, which must neither stop training nor wait for the GPU (a degenerate pair
            then gives a finite, meaningless matrix).

    Returns:
        A proper rotation matrix ($\det R = +1$).

    Raises:
        ValueError: with ``eps=None``: wrong shape, NaN/inf, or $a_1 = 0$ or $a_2$ parallel to
            $a_1$ (within 64 machine epsilons), where Gram–Schmidt is undefined.

    Examples:
        >>> import torch
        >>> from xrender.geometry import rotation_6d_to_matrix
        >>> R = rotation_6d_to_matrix(torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0], dtype=torch.float64))
        >>> R.tolist()  # columns: x normalised, y orthogonalised, z = x × y
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        >>> d6 = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # any four pairs
        >>> torch.linalg.det(rotation_6d_to_matrix(d6)).round(decimals=6).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    if eps is not None:
        b1 = torch.nn.functional.normalize(a1, dim=-1, eps=eps)
        b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=eps)
        return torch.stack((b1, b2, torch.linalg.cross(b1, b2, dim=-1)), dim=-1)
    check_finite(check_shape(d6, "* 6", "d6"), "d6")
    n1 = torch.linalg.vector_norm(a1, dim=-1, keepdim=True)
    u2 = a2 - (a1 * a2).sum(-1, keepdim=True) * a1 / torch.where(n1 > 0, n1 * n1, torch.ones_like(n1))
    n2 = torch.linalg.vector_norm(u2, dim=-1, keepdim=True)
    tol = 64 * torch.finfo(d6.dtype).eps * torch.linalg.vector_norm(a2, dim=-1, keepdim=True)
    if bool(((n1 == 0) | (n2 <= tol)).any()):
        raise ValueError("d6: expected two linearly independent 3-vectors, got a zero or parallel pair")
    b1 = a1 / n1
    b2 = u2 / n2
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(R: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 6"]:
    r"""6-D representation of a rotation: its first two columns.

    Returns:
        $(r_{11}, r_{21}, r_{31}, r_{12}, r_{22}, r_{32})$ for $R = (r_{ij})$.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import matrix_to_rotation_6d, rotation_6d_to_matrix
        >>> R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # +90° about z
        >>> matrix_to_rotation_6d(R).tolist()  # the first two columns
        [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
        >>> torch.equal(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R)
        True
    """
    check_shape(R, "* 3 3", "R")
    return R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)


# --------------------------------------------------------------------------------------------------
# Euler angles
# --------------------------------------------------------------------------------------------------


def _parse_euler(convention: object) -> tuple[tuple[int, int, int], bool]:
    """Axis indices (0, 1, 2 for x, y, z) and ``extrinsic`` of a convention string."""
    if not isinstance(convention, str) or convention not in EULER_CONVENTIONS:
        raise ValueError(
            "convention: expected 3 axis letters, all lowercase (extrinsic) or all uppercase (intrinsic), "
            f"one of {', '.join(EULER_CONVENTIONS)}; got {convention!r}"
        )
    a, b, c = (_AXIS_INDEX[ch] for ch in convention.lower())
    return (a, b, c), convention.islower()


def _elementary_rotation(angle: Tensor, axis: int) -> Tensor:
    """Right-handed rotation by ``angle`` (rad) about coordinate axis ``axis``, shape (*, 3, 3)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3  # the rotated plane, in right-handed cyclic order
    entries = [[zero] * 3 for _ in range(3)]
    entries[axis][axis] = one
    entries[i][i], entries[i][j] = cos, -sin
    entries[j][i], entries[j][j] = sin, cos
    return torch.stack([torch.stack(row, dim=-1) for row in entries], dim=-2)


def euler_to_matrix(angles: Float[Tensor, "*B 3"], convention: str, degrees: bool = False) -> Float[Tensor, "*B 3 3"]:
    r"""Rotation matrix of three Euler angles, exactly as SciPy's ``Rotation.from_euler``.

    For the axis sequence $(a_1, a_2, a_3)$ and angles $(\alpha, \beta, \gamma)$:

    * extrinsic (lowercase, fixed axes): $R = R_{a_3}(\gamma) R_{a_2}(\beta) R_{a_1}(\alpha)$;
    * intrinsic (uppercase, moving axes): $R = R_{a_1}(\alpha) R_{a_2}(\beta) R_{a_3}(\gamma)$.

    $R_a(\phi)$ is the right-handed rotation by $\phi$ about coordinate axis $a$.

    Args:
        angles: the three angles, in the order of the letters of ``convention``.
        convention: one of `EULER_CONVENTIONS`, e.g. ``"ZYX"`` or ``"xyz"``.
        degrees: ``angles`` are in degrees instead of radians.

    Raises:
        ValueError: unknown convention (the message lists the valid ones), wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import euler_to_matrix
        >>> angles = torch.tensor([90.0, 0.0, 90.0], dtype=torch.float64)
        >>> x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        >>> (euler_to_matrix(angles, "xyz", degrees=True) @ x).round().int().tolist()  # about fixed x, then fixed z
        [0, 1, 0]
        >>> (euler_to_matrix(angles, "XYZ", degrees=True) @ x).round().int().tolist()  # about x, then the new z
        [0, 0, 1]
    """
    axes, extrinsic = _parse_euler(convention)
    check_shape(angles, "* 3", "angles")
    if degrees:
        angles = torch.deg2rad(angles)
    first, second, third = (_elementary_rotation(angles[..., n], axes[n]) for n in range(3))
    return third @ second @ first if extrinsic else first @ second @ third


def _safe_hypot(x: Tensor, y: Tensor) -> Tensor:
    """``hypot(x, y)`` with a zero (not NaN) gradient at ``x = y = 0``."""
    sq = x * x + y * y
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def _safe_atan2(y: Tensor, x: Tensor) -> Tensor:
    """``atan2(y, x)`` with a finite gradient at ``x = y = 0`` (value 0 there)."""
    both_zero = (x == 0) & (y == 0)
    return torch.atan2(y, torch.where(both_zero, torch.ones_like(x), x))


def _wrap_angle(a: Tensor) -> Tensor:
    """Map angles in [-2pi, 2pi] into [-pi, pi]."""
    return torch.where(a < -math.pi, a + 2 * math.pi, torch.where(a > math.pi, a - 2 * math.pi, a))


def _quaternion_to_extrinsic_euler(q: Tensor, axes: tuple[int, int, int], zero_first: bool) -> Tensor:
    """Extrinsic Euler angles of unit quaternions (Bernardes & Viollet, PLoS ONE 2022).

    ``zero_first`` picks which of the two outer angles is set to 0 at gimbal lock (the first when the
    caller reverses the sequence to handle an intrinsic convention, so that the *last* reported angle
    is the zero one, as in SciPy).
    """
    i, j, k = axes
    proper = i == k
    if proper:
        k = 3 - i - j  # the axis not in the sequence
    sign = (i - j) * (j - k) * (k - i) // 2  # +1 for a cyclic (even) permutation of (x, y, z), else -1
    w, qi, qj, qk = q[..., 0], q[..., 1 + i], q[..., 1 + j], q[..., 1 + k]
    if proper:
        a, b, c, d = w, qi, qj, sign * qk
    else:  # rotate the Tait–Bryan problem into a proper one about (i, j, i)
        a, b, c, d = w - qj, qi + sign * qk, qj + w, sign * qk - qi
    middle = 2 * torch.atan2(_safe_hypot(c, d), _safe_hypot(a, b))  # in [0, pi]
    half_sum, half_diff = _safe_atan2(b, a), _safe_atan2(d, c)
    first, third = half_sum - half_diff, half_sum + half_diff
    # At middle = 0 only first + third (= 2 half_sum) is defined, at middle = pi only third - first
    # (= 2 half_diff); put all of it into one outer angle and set the other to zero.
    tol = _GIMBAL_ULPS * torch.finfo(q.dtype).eps
    at_zero = middle <= tol
    locked = at_zero | (middle >= math.pi - tol)
    lock_sum = torch.where(at_zero, 2 * half_sum, 2 * half_diff if zero_first else -2 * half_diff)
    zeros = torch.zeros_like(first)
    if zero_first:
        first, third = torch.where(locked, zeros, first), torch.where(locked, lock_sum, third)
    else:
        first, third = torch.where(locked, lock_sum, first), torch.where(locked, zeros, third)
    if not proper:
        third = sign * third
        middle = middle - math.pi / 2
    return _wrap_angle(torch.stack((first, middle, third), dim=-1))


def matrix_to_euler(R: Float[Tensor, "*B 3 3"], convention: str, degrees: bool = False) -> Float[Tensor, "*B 3"]:
    r"""Euler angles of a rotation matrix; the inverse of `euler_to_matrix`, matching SciPy's ``as_euler``.

    Uses the quaternion method of Bernardes & Viollet (2022), which has no special axis cases.
    Ranges: the outer angles in $[-\pi, \pi]$; the middle angle in $[0, \pi]$ for proper
    Euler sequences (e.g. ``"zxz"``) and $[-\pi/2, \pi/2]$ for Tait–Bryan ones (e.g. ``"ZYX"``).

    At gimbal lock (middle angle within 10 machine epsilons of $0$/$\pi$, resp.
    $\pm\pi/2$) only a combination of the outer angles is defined: the third angle is set to 0
    and the first carries the rotation, as in SciPy, so the result is finite and ``euler_to_matrix``
    reproduces ``R``. (SciPy's lock tolerance is 1e-7 rad; within it, but above ours, the two return
    different, equally valid, angles.) The gradient at gimbal lock is finite but meaningless: the
    map is not differentiable there.

    Args:
        R: rotation matrices.
        convention: one of `EULER_CONVENTIONS`, e.g. ``"ZYX"`` or ``"xyz"``.
        degrees: return degrees instead of radians.

    Returns:
        The three angles, in the order of the letters of ``convention``.

    Raises:
        ValueError: unknown convention (the message lists the valid ones), wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import euler_to_matrix, matrix_to_euler
        >>> R = euler_to_matrix(torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64), "ZYX", degrees=True)
        >>> matrix_to_euler(R, "ZYX", degrees=True).round(decimals=6).tolist()
        [10.0, 20.0, 30.0]
        >>> matrix_to_euler(R, "xyz", degrees=True).round(decimals=6).tolist()  # = intrinsic ZYX reversed
        [30.0, 20.0, 10.0]
    """
    axes, extrinsic = _parse_euler(convention)
    q = matrix_to_quaternion(R)
    if extrinsic:
        angles = _quaternion_to_extrinsic_euler(q, axes, zero_first=False)
    else:  # an intrinsic sequence equals the reversed extrinsic sequence with reversed angles
        angles = _quaternion_to_extrinsic_euler(q, axes[::-1], zero_first=True).flip(-1)
    return torch.rad2deg(angles) if degrees else angles


# --------------------------------------------------------------------------------------------------
# Projection onto SO(3)
# --------------------------------------------------------------------------------------------------


class _NearestRotation(torch.autograd.Function):
    """Polar factor with det +1, with the analytic backward.

    ``torch.linalg.svd``'s own backward divides by differences of singular values: measured, it
    gives inf/NaN gradients at any exact rotation matrix (all singular values 1), which is where
    "matrix" parameters usually sit. The polar factor itself is smooth there; its derivative only
    divides by *sums* of (sign-corrected) singular values.
    """

    @staticmethod
    def forward(ctx, M: Tensor) -> Tensor:
        U, S, Vh = torch.linalg.svd(M)
        det_sign = torch.sign(torch.linalg.det(U @ Vh))
        flip = torch.cat((torch.ones_like(S[..., :2]), det_sign[..., None]), dim=-1)
        U, S = U * flip[..., None, :], S * flip
        ctx.save_for_backward(U, S, Vh)
        return U @ Vh

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        U, S, Vh = ctx.saved_tensors
        # dR = U B V^T with B_ij = (X_ij - X_ji) / (s_i + s_j) and X = U^T dM V, so by adjunction
        # dL/dM = U Z V^T with Z_ij = (H_ij - H_ji) / (s_i + s_j) and H = U^T G V.
        H = U.transpose(-1, -2) @ grad @ Vh.transpose(-1, -2)
        denom = S[..., :, None] + S[..., None, :]
        ok = denom.abs() > torch.finfo(S.dtype).tiny  # denom = 0: the nearest rotation is not unique
        Z = torch.where(ok, (H - H.transpose(-1, -2)) / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
        return U @ Z @ Vh


def nearest_rotation(M: Float[Tensor, "*B 3 3"]) -> Float[Tensor, "*B 3 3"]:
    r"""The rotation matrix closest to ``M`` in the Frobenius norm (special orthogonal Procrustes).

    With the SVD $M = U \Sigma V^\top$,
    $R = U \operatorname{diag}(1, 1, \det(U V^\top)) V^\top$, so $\det R = +1$ always
    (a reflection is turned into the nearest proper rotation). A rotation is returned unchanged.

    The backward pass is the analytic derivative of the polar factor, finite at exact rotations
    (where PyTorch's SVD backward is not); it is first-order only (double backward raises). Where
    the nearest rotation is not unique (two sign-corrected singular values summing to 0) that
    component of the gradient is set to 0.

    Raises:
        ValueError: wrong shape.

    Examples:
        >>> import torch
        >>> from xrender.geometry import nearest_rotation
        >>> M = torch.tensor([[1.1, 0.1, 0.0], [-0.1, 0.9, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        >>> R = nearest_rotation(M)
        >>> torch.allclose(R.T @ R, torch.eye(3, dtype=torch.float64)), round(torch.linalg.det(R).item(), 6)
        (True, 1.0)
        >>> torch.equal(nearest_rotation(torch.eye(3)), torch.eye(3))  # a rotation is returned unchanged
        True
    """
    return _NearestRotation.apply(check_shape(M, "* 3 3", "M"))


# --------------------------------------------------------------------------------------------------
# Finite rotation sets
# --------------------------------------------------------------------------------------------------


def cube_rotations(
    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> Float[Tensor, "24 3 3"]:
    r"""The 24 rotations that map a cube onto itself (the octahedral group), as matrices.

    They are the signed permutation matrices of determinant +1, the identity first. Every rotation
    lies within 62.8° of one of them (the group's covering radius in the rotation angle), which makes
    them a set of starting orientations for a search whose reach is about 60°.

    Args:
        dtype: floating dtype of the matrices.
        device: their device.

    Returns:
        ``(24, 3, 3)`` rotation matrices.

    Examples:
        >>> import torch
        >>> from xrender.geometry import cube_rotations
        >>> R = cube_rotations()
        >>> R.shape, torch.equal(R[0], torch.eye(3, dtype=torch.float64))
        (torch.Size([24, 3, 3]), True)
        >>> torch.allclose(torch.linalg.det(R), torch.ones(24, dtype=torch.float64))
        True
    """
    matrices = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = torch.zeros(3, 3, dtype=dtype, device=device)
            matrix[range(3), order] = torch.tensor(signs, dtype=dtype, device=device)
            if torch.linalg.det(matrix) > 0:
                matrices.append(matrix)
    return torch.stack(matrices)
