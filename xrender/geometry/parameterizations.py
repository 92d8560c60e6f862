r"""A registry of pose parameterizations: flat parameter vectors $\leftrightarrow$ 4x4 poses.

A `Parameterization` maps parameters of shape ``(*, P)`` to poses ``(*, 4, 4)`` and back.
Built-in entries (see `available_parameterizations`):

=============== === ==========================================================================
name             P  parameters
=============== === ==========================================================================
``euler``        6  three Euler angles (``convention``, default ``"ZYX"``; radians unless
                    ``degrees=True``), then $t_x, t_y, t_z$
``axis_angle``   6  rotation vector $\omega$ (rad), then $t$
``quaternion``   7  $(w, x, y, z)$ scalar first (normalized in ``to_pose``), then $t$
``rotation_6d``  9  first two columns of $R$ (Gram–Schmidt in ``to_pose``), then $t$
``matrix``      12  the 9 entries of $R$ row-major (projected to the nearest rotation in
                    ``to_pose``), then $t$
``se3_log``      6  the twist $\log T = (\omega, v)$, rotation first (note $v \ne t$)
=============== === ==========================================================================

The default Euler convention ``"ZYX"`` is intrinsic yaw–pitch–roll (equivalently extrinsic
``"xyz"``). Like every Tait–Bryan sequence its singularity is at a middle angle of ±90°, far from
the identity where registrations start; proper Euler sequences such as ``"zxz"`` are singular *at*
the identity.

Translations are in the unit of the poses (mm). Conventions of the rotation types are those of
`xrender.geometry.rotations`; of the twist, those of `xrender.geometry.se3`.

These parameters encode an absolute camera-to-world pose about the world origin (for networks
and batched rendering). Six numbers that a person gives — a pose relative to a view, about the
volume's isocentre, as ``xrender render --pose`` and ``xrender register --init`` take them — are
a motion, `xrender.geometry.motion`, the one convention for those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender._registry import Registry
from xrender.geometry import rotations as rot
from xrender.geometry import se3

__all__ = [
    "Parameterization",
    "get_parameterization",
    "register_parameterization",
    "available_parameterizations",
    "pose_from_params",
    "params_from_pose",
]


@dataclass(frozen=True)
class Parameterization:
    """A named, invertible map between parameter vectors of length ``num_params`` and poses.

    Attributes:
        name: the registry name.
        num_params: ``P``, the length of the parameter vector.
        to_pose_fn: the unchecked map ``(*, P) -> (*, 4, 4)``; call `to_pose`, which validates.
        from_pose_fn: the unchecked map ``(*, 4, 4) -> (*, P)``; call `from_pose`.
        options: the options it was built with, as sorted ``(name, value)`` pairs, e.g.
            ``(("convention", "ZYX"), ("degrees", False))``. Equality and hashing use
            ``name``, ``num_params`` and ``options``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import get_parameterization
        >>> euler = get_parameterization("euler", convention="ZYX", degrees=True)
        >>> euler.name, euler.num_params, euler.options
        ('euler', 6, (('convention', 'ZYX'), ('degrees', True)))
        >>> params = torch.tensor([30.0, 0.0, 0.0, 1.0, 2.0, 3.0], dtype=torch.float64)  # 30° yaw, then t (mm)
        >>> T = euler.to_pose(params)
        >>> T[:3, 3].tolist()
        [1.0, 2.0, 3.0]
        >>> euler.from_pose(T).round(decimals=6).tolist()
        [30.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    """

    name: str
    num_params: int
    to_pose_fn: Callable[[Tensor], Tensor] = field(repr=False, compare=False)
    from_pose_fn: Callable[[Tensor], Tensor] = field(repr=False, compare=False)
    options: tuple[tuple[str, Any], ...] = ()

    def to_pose(self, params: Float[Tensor, "*B P"]) -> Float[Tensor, "*B 4 4"]:
        """Poses of parameter vectors ``(*, P)``; always valid rigid transforms.

        Raises:
            ValueError: wrong shape (last axis not ``P``) or a degenerate rotation
                part (zero quaternion, parallel 6-D columns).
        """
        check_shape(params, f"* {self.num_params}", "params")
        return self.to_pose_fn(params)

    def from_pose(self, T: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B P"]:
        """Parameter vectors ``(*, P)`` of poses; ``to_pose(from_pose(T))`` reproduces ``T``.

        Raises:
            ValueError: wrong shape.
        """
        check_shape(T, "* 4 4", "T")
        return self.from_pose_fn(T)


def _with_translation(
    name: str,
    num_rotation: int,
    to_matrix: Callable[[Tensor], Tensor],
    from_matrix: Callable[[Tensor], Tensor],
    **options: Any,
) -> Parameterization:
    """A parameterization ``[rotation params..., tx, ty, tz]`` from a rotation-matrix conversion pair."""

    def to_pose(params: Tensor) -> Tensor:
        return se3.make_pose(to_matrix(params[..., :num_rotation]), params[..., num_rotation:])

    def from_pose(T: Tensor) -> Tensor:
        rotation = from_matrix(T[..., :3, :3])
        return torch.cat((rotation, T[..., :3, 3]), dim=-1)

    return Parameterization(name, num_rotation + 3, to_pose, from_pose, tuple(sorted(options.items())))


# ----------------------------------------------------------------------------------------------
# Built-in factories
# ----------------------------------------------------------------------------------------------


def _euler(convention: str = "ZYX", degrees: bool = False) -> Parameterization:
    rot._parse_euler(convention)  # fail now, not at the first call, on an unknown convention
    return _with_translation(
        "euler",
        3,
        lambda a: rot.euler_to_matrix(a, convention, degrees=degrees),
        lambda R: rot.matrix_to_euler(R, convention, degrees=degrees),
        convention=convention,
        degrees=bool(degrees),
    )


def _axis_angle() -> Parameterization:
    return _with_translation("axis_angle", 3, rot.axis_angle_to_matrix, rot.matrix_to_axis_angle)


def _quaternion() -> Parameterization:
    return _with_translation("quaternion", 4, rot.quaternion_to_matrix, rot.matrix_to_quaternion)


def _rotation_6d() -> Parameterization:
    return _with_translation("rotation_6d", 6, rot.rotation_6d_to_matrix, rot.matrix_to_rotation_6d)


def _matrix() -> Parameterization:
    return _with_translation(
        "matrix",
        9,
        lambda m: rot.nearest_rotation(m.reshape(*m.shape[:-1], 3, 3)),
        lambda R: R.reshape(*R.shape[:-2], 9),
    )


def _se3_log() -> Parameterization:
    return Parameterization("se3_log", 6, se3.se3_exp, se3.se3_log)


_REGISTRY: Registry[Parameterization] = Registry("parameterization", Parameterization)
for _name, _factory in {
    "euler": _euler,
    "axis_angle": _axis_angle,
    "quaternion": _quaternion,
    "rotation_6d": _rotation_6d,
    "matrix": _matrix,
    "se3_log": _se3_log,
}.items():
    _REGISTRY.register(_name, _factory)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def available_parameterizations() -> list[str]:
    """The registered names, sorted.

    Examples:
        >>> from xrender.geometry import available_parameterizations
        >>> available_parameterizations()
        ['axis_angle', 'euler', 'matrix', 'quaternion', 'rotation_6d', 'se3_log']
    """
    return _REGISTRY.names()


def register_parameterization(name: str, factory: Callable[..., Parameterization], overwrite: bool = False) -> None:
    """Add a parameterization: ``get_parameterization(name, **options)`` will call ``factory(**options)``.

    Raises:
        TypeError: ``name`` is not a string or ``factory`` is not callable.
        ValueError: empty name, or the name is taken and ``overwrite`` is false.

    Examples:
        >>> import torch
        >>> from xrender.geometry import Parameterization, make_pose, pose_from_params, register_parameterization
        >>> def translation_only() -> Parameterization:
        ...     def to_pose(t):
        ...         return make_pose(torch.eye(3, dtype=t.dtype).expand(*t.shape[:-1], 3, 3), t)
        ...     return Parameterization("translation", 3, to_pose, lambda T: T[..., :3, 3])
        >>> register_parameterization("translation", translation_only, overwrite=True)
        >>> pose_from_params(torch.tensor([1.0, 2.0, 3.0]), "translation")[:3, 3].tolist()
        [1.0, 2.0, 3.0]
    """
    _REGISTRY.register(name, factory, overwrite=overwrite)


def get_parameterization(name: str, **options: Any) -> Parameterization:
    """Build the registered parameterization ``name`` with keyword ``options``.

    Raises:
        ValueError: unknown name (the message lists the available ones) or an invalid option value.
        TypeError: an option the parameterization does not accept (the message lists the accepted
            ones), or a factory that does not return a `Parameterization`.

    Examples:
        >>> import torch
        >>> from xrender.geometry import get_parameterization
        >>> get_parameterization("se3_log").num_params
        6
        >>> euler = get_parameterization("euler", convention="xyz", degrees=True)
        >>> euler.to_pose(torch.tensor([0.0, 0.0, 90.0, 0.0, 0.0, 0.0]))[:3, 0].round().int().tolist()  # x turns to y
        [0, 1, 0]
    """
    return _REGISTRY.get(name, **options)


def pose_from_params(params: Float[Tensor, "*B P"], name: str, **options: Any) -> Float[Tensor, "*B 4 4"]:
    """Shortcut for ``get_parameterization(name, **options).to_pose(params)``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import pose_from_params
        >>> params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 10.0, 20.0, 30.0]])  # (w, x, y, z), then t
        >>> T = pose_from_params(params, "quaternion")
        >>> T.shape, T[0, :3, 3].tolist()
        (torch.Size([1, 4, 4]), [10.0, 20.0, 30.0])
    """
    return get_parameterization(name, **options).to_pose(params)


def params_from_pose(T: Float[Tensor, "*B 4 4"], name: str, **options: Any) -> Float[Tensor, "*B P"]:
    """Shortcut for ``get_parameterization(name, **options).from_pose(T)``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import params_from_pose, standard_pose
        >>> pose = standard_pose("ap", 600.0, torch.zeros(3, dtype=torch.float64))
        >>> params_from_pose(pose, "rotation_6d").round().int().tolist()  # camera x and y axes, then the source
        [1, 0, 0, 0, 0, -1, 0, -600, 0]
    """
    return get_parameterization(name, **options).from_pose(T)
