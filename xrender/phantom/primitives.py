"""Convex analytic primitives with exact ray intersections.

A primitive is a convex solid described in its own *local* frame (millimetres) and placed in the
world (mm, LPS) by a rotation and a centre::

    world = rotation @ local + center        local = rotation.T @ (world - center)

Two shapes are provided:

* `Ellipsoid`: ``(x/a)² + (y/b)² + (z/c)² <= 1`` with ``semi_axes = (a, b, c)``.
* `EllipticCylinder`: ``(x/a)² + (y/b)² <= 1`` and ``|z| <= h`` with ``semi_axes = (a, b, h)``
  (the cylinder's axis is the local ``z`` axis; ``h`` is half its length).

Both may be cut further by half-spaces ``n · local <= offset`` (``clip``), which keeps them
convex, so a straight line meets each primitive in at most one interval ``[t_in, t_out]``; those
parameters are computed in closed form (a quadratic in the scaled local frame, then the planes).

Each primitive also carries a Hounsfield value ``hu`` and how it combines with what lies under it
(``op``): ``"set"`` paints ``hu`` over the value accumulated so far (painter's algorithm, later
primitives win), ``"add"`` adds ``hu`` to it (the classic additive Shepp–Logan model). See
`xrender.phantom.Phantom`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape

__all__ = ["Ellipsoid", "EllipticCylinder", "Primitive", "rotation_from_axes"]

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]
Plane = tuple[float, float, float, float]
Op = Literal["set", "add"]

_IDENTITY: Mat3 = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _array(x: Any, name: str) -> np.ndarray:
    """Any array-like (tensor, ndarray, nested sequence) as a float64 ndarray."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numbers, got {x!r}") from err


def _vec3(x: Any, name: str) -> Vec3:
    arr = _array(x, name)
    if arr.shape != (3,):
        raise ValueError(f"{name}: expected shape (3,), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _rotation(x: Any, name: str) -> Mat3:
    arr = _array(np.eye(3) if x is None else x, name)
    if arr.shape != (3, 3):
        raise ValueError(f"{name}: expected a 3x3 rotation matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got {arr.tolist()}")
    error = float(np.abs(arr.T @ arr - np.eye(3)).max())
    if error > 1e-6 or np.linalg.det(arr) <= 0:
        raise ValueError(
            f"{name}: expected a proper rotation (orthonormal, determinant +1), "
            f"got |RᵀR - I| = {error:.2e}, det = {np.linalg.det(arr):.4f}"
        )
    return tuple(tuple(float(v) for v in row) for row in arr)  # type: ignore[return-value]


def rotation_from_axes(first: Any, second: Any) -> Float[Tensor, "3 3"]:
    """A right-handed rotation built from two world directions (Gram–Schmidt).

    Column 0 is ``first`` normalised, column 1 is the part of ``second`` orthogonal to it,
    normalised, and column 2 is their cross product. Use it as a primitive's ``rotation`` to
    align local ``x`` with ``first`` and local ``y`` (as nearly as possible) with ``second``.

    Args:
        first: world direction ``(3,)`` of the local ``x`` axis.
        second: world direction ``(3,)`` that the local ``y`` axis should lean towards.

    Returns:
        The rotation, float64, shape ``(3, 3)``; its columns are the local axes in world terms.

    Raises:
        ValueError: a direction of zero length, or two parallel directions.
    """
    return torch.from_numpy(_frame(_vec3(first, "first"), _vec3(second, "second")))


def _frame(first: Vec3, second: Vec3) -> np.ndarray:
    e0 = np.asarray(first, dtype=np.float64)
    e1 = np.asarray(second, dtype=np.float64)
    n0 = np.linalg.norm(e0)
    if n0 == 0:
        raise ValueError("first: expected a non-zero direction, got (0, 0, 0)")
    e0 = e0 / n0
    e1 = e1 - (e1 @ e0) * e0
    n1 = np.linalg.norm(e1)
    if n1 < 1e-9 * max(1.0, float(np.linalg.norm(second))):
        raise ValueError(f"second: expected a direction not parallel to first, got {second} and {first}")
    e1 = e1 / n1
    return np.stack([e0, e1, np.cross(e0, e1)], axis=1)


class _Packed(NamedTuple):
    """Primitive parameters stacked along a leading axis ``K`` in one dtype/device."""

    center: Tensor  # (K, 3)
    rotation: Tensor  # (K, 3, 3), columns = local axes in world terms
    inv_axes: Tensor  # (K, 3), 1/semi-axis, 0 where the quadric ignores the axis
    normals: Tensor  # (K, P, 3), local half-space normals (zero rows pad)
    offsets: Tensor  # (K, P)
    hu: Tensor  # (K,)
    is_add: Tensor  # (K,) bool


@dataclass(frozen=True)
class Primitive:
    """Base class of the convex primitives; use `Ellipsoid` or `EllipticCylinder`.

    Attributes:
        center: world position ``(3,)`` of the local origin, mm.
        semi_axes: ``(3,)`` half-sizes in mm along the local axes (their meaning depends on the
            shape; every one must be > 0).
        rotation: ``(3, 3)`` proper rotation whose columns are the local axes in world terms;
            ``None`` means the identity.
        hu: Hounsfield value painted (``op="set"``) or added (``op="add"``) inside the primitive.
        op: ``"set"`` or ``"add"``; see the module docstring.
        name: a label, used in error messages and lookups.
        clip: extra half-spaces ``(nx, ny, nz, offset)``, each keeping the local points ``q``
            with ``n · q <= offset`` (mm); ``n`` need not be unit but must be non-zero.

    Array-like arguments (tensors, arrays, sequences) are stored as tuples of Python floats, so a
    primitive is hashable, picklable and independent of any dtype or device.
    """

    center: Vec3
    semi_axes: Vec3
    rotation: Mat3 | None = None
    hu: float = 0.0
    op: Op = "set"
    name: str = ""
    clip: tuple[Plane, ...] = ()

    #: Which local axes enter the quadric (1) and which it ignores (0).
    _quadric: ClassVar[Vec3] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if type(self) is Primitive:
            raise TypeError("Primitive is abstract: use Ellipsoid or EllipticCylinder")
        label = f"{type(self).__name__}({self.name!r})" if self.name else type(self).__name__
        object.__setattr__(self, "center", _vec3(self.center, f"{label}.center"))
        axes = _vec3(self.semi_axes, f"{label}.semi_axes")
        check_positive(axes, f"{label}.semi_axes")
        object.__setattr__(self, "semi_axes", axes)
        object.__setattr__(self, "rotation", _rotation(self.rotation, f"{label}.rotation"))
        hu = float(self.hu)
        if not math.isfinite(hu):
            raise ValueError(f"{label}.hu: expected a finite value, got {hu}")
        object.__setattr__(self, "hu", hu)
        if self.op not in ("set", "add"):
            raise ValueError(f"{label}.op: expected 'set' or 'add', got {self.op!r}")
        planes = []
        for n, plane in enumerate(self.clip):
            arr = _array(plane, f"{label}.clip[{n}]")
            if arr.shape != (4,) or not np.isfinite(arr).all() or not np.any(arr[:3]):
                raise ValueError(
                    f"{label}.clip[{n}]: expected 4 finite numbers (nx, ny, nz, offset) with a non-zero "
                    f"normal, got {arr.tolist()}"
                )
            planes.append(tuple(float(v) for v in arr))
        object.__setattr__(self, "clip", tuple(planes))

    # ----------------------------------------------------------------------------- geometry
    @property
    def planes(self) -> tuple[Plane, ...]:
        """Every bounding half-space in the local frame: the shape's own (caps) then ``clip``."""
        return self.clip

    @property
    def quadric_scale(self) -> Vec3:
        """``1 / semi_axes`` on the axes that enter the quadric, 0 on the others."""
        return tuple(w / s for w, s in zip(self._quadric, self.semi_axes))  # type: ignore[return-value]

    def _half_extent(self) -> np.ndarray:
        raise NotImplementedError

    def bounding_box(self) -> tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """World-axis-aligned box ``(lower, upper)`` (mm, float64) enclosing the primitive.

        It ignores ``clip`` (so it may be loose), never the shape itself.
        """
        c = np.asarray(self.center)
        e = self._half_extent()
        return torch.from_numpy(c - e), torch.from_numpy(c + e)

    def translated(self, offset: Any) -> Primitive:
        """The same primitive moved by ``offset`` ``(3,)`` mm."""
        shift = np.asarray(_vec3(offset, "offset"))
        return replace(self, center=tuple((np.asarray(self.center) + shift).tolist()))

    def mirrored_x(self) -> Primitive:
        """The mirror image in the world plane ``x = 0`` (patient left ↔ right).

        The reflection is written as a proper rotation by also flipping local ``x`` (every shape
        here is symmetric in it), so clip planes have their ``x`` component negated.
        """
        m = np.diag([-1.0, 1.0, 1.0])
        r = m @ np.asarray(self.rotation) @ m
        c = m @ np.asarray(self.center)
        clip = tuple((-nx, ny, nz, b) for nx, ny, nz, b in self.clip)
        return replace(self, center=tuple(c.tolist()), rotation=r, clip=clip)

    def inset(self, thickness: float | Any, hu: float, op: Op = "set", name: str | None = None) -> Primitive:
        """A shrunken copy nested inside this primitive (e.g. the marrow inside a cortical shell).

        Same centre and rotation; every semi-axis reduced by ``thickness`` (a float, or ``(3,)``
        per local axis) and every clip plane moved inwards by it, so the result lies inside.

        Args:
            thickness: wall thickness in mm (> 0, smaller than the semi-axes).
            hu: the inner primitive's Hounsfield value.
            op: the inner primitive's ``op``.
            name: its name; defaults to ``name + " (inner)"``.

        Raises:
            ValueError: a thickness that is not positive or leaves a non-positive semi-axis.
        """
        t = np.broadcast_to(_array(thickness, "thickness"), (3,)).astype(np.float64)
        check_positive(torch.from_numpy(t.copy()), "thickness")
        axes = np.asarray(self.semi_axes) - t
        if (axes <= 0).any():
            raise ValueError(f"thickness: expected less than the semi-axes {self.semi_axes}, got {t.tolist()}")
        t_min = float(t.min())
        clip = tuple((nx, ny, nz, b - t_min * math.sqrt(nx * nx + ny * ny + nz * nz)) for nx, ny, nz, b in self.clip)
        label = name if name is not None else f"{self.name} (inner)"
        return replace(self, semi_axes=tuple(axes.tolist()), hu=hu, op=op, name=label, clip=clip)

    # ----------------------------------------------------------------------------- queries
    def intersect(
        self, origins: Float[Tensor, "*B 3"], directions: Float[Tensor, "*B 3"]
    ) -> tuple[Float[Tensor, "*B"], Float[Tensor, "*B"], Bool[Tensor, "*B"]]:
        """Where the lines ``origins + t · directions`` enter and leave the primitive.

        ``t`` is in units of ``directions``: for unit directions it is millimetres, otherwise the
        chord length in mm is ``(t_out - t_in) · |direction|``. The whole line is considered
        (``t`` may be negative).

        Args:
            origins: points on the lines, mm, ``(*B, 3)``.
            directions: line directions, non-zero, ``(*B, 3)`` (broadcast against ``origins``).

        Returns:
            ``(t_in, t_out, hit)``, each of the broadcast batch shape; ``t_in < t_out`` where
            ``hit``, and both are 0 where the line misses (or only grazes) the primitive.

        Raises:
            ValueError: wrong shapes, non-finite values or a zero direction.
        """
        o, d, batch = _rays(origins, directions)
        t_in, t_out, hit = _intersect(pack((self,), o.dtype, o.device), o, d)
        return t_in[:, 0].reshape(batch), t_out[:, 0].reshape(batch), hit[:, 0].reshape(batch)

    def contains(self, points: Float[Tensor, "*B 3"]) -> Bool[Tensor, "*B"]:
        """Whether each world point (mm) lies in the closed primitive; shape ``(*B,)``."""
        check_shape(points, "* 3", "points")
        p = points if points.is_floating_point() else points.to(torch.get_default_dtype())
        check_finite(p, "points")
        return _contains_xyz(self, p[..., 0], p[..., 1], p[..., 2])


@dataclass(frozen=True)
class Ellipsoid(Primitive):
    """Ellipsoid ``(x/a)² + (y/b)² + (z/c)² <= 1`` in the local frame; ``semi_axes = (a, b, c)`` mm.

    See `Primitive` for the attributes. Example: a 20 mm sphere of bone at the origin::

        Ellipsoid(center=(0, 0, 0), semi_axes=(20, 20, 20), hu=1000)
    """

    def _half_extent(self) -> np.ndarray:
        m = np.asarray(self.rotation) * np.asarray(self.semi_axes)  # columns scaled
        return np.sqrt((m * m).sum(axis=1))


@dataclass(frozen=True)
class EllipticCylinder(Primitive):
    """Capped elliptic cylinder ``(x/a)² + (y/b)² <= 1``, ``|z| <= h``; ``semi_axes = (a, b, h)`` mm.

    The axis is the local ``z`` axis (column 2 of ``rotation``); the caps are flat. See
    `Primitive` for the attributes.
    """

    _quadric: ClassVar[Vec3] = (1.0, 1.0, 0.0)

    @property
    def planes(self) -> tuple[Plane, ...]:
        """Both caps ``±z <= h`` then ``clip``, in the local frame."""
        h = self.semi_axes[2]
        return ((0.0, 0.0, 1.0, h), (0.0, 0.0, -1.0, h), *self.clip)

    def _half_extent(self) -> np.ndarray:
        r = np.asarray(self.rotation)
        a, b, h = self.semi_axes
        return np.sqrt((r[:, 0] * a) ** 2 + (r[:, 1] * b) ** 2) + np.abs(r[:, 2]) * h


# --------------------------------------------------------------------------------- kernels
def pack(primitives: tuple[Primitive, ...], dtype: torch.dtype, device: torch.device | str | None) -> _Packed:
    """Stack the parameters of ``primitives`` into tensors of one dtype and device."""
    p_max = max(1, *(len(p.planes) for p in primitives))
    normals = np.zeros((len(primitives), p_max, 3))
    offsets = np.ones((len(primitives), p_max))  # padding rows read 0 · q <= 1: always true
    for k, prim in enumerate(primitives):
        for j, (nx, ny, nz, b) in enumerate(prim.planes):
            normals[k, j] = (nx, ny, nz)
            offsets[k, j] = b

    def t(x: Any) -> Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

    return _Packed(
        center=t([p.center for p in primitives]),
        rotation=t([p.rotation for p in primitives]),
        inv_axes=t([p.quadric_scale for p in primitives]),
        normals=t(normals),
        offsets=t(offsets),
        hu=t([p.hu for p in primitives]),
        is_add=torch.tensor([p.op == "add" for p in primitives], device=device),
    )


def _rays(origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Validate and broadcast rays; return flat ``(N, 3)`` origins, directions and the batch shape."""
    check_shape(origins, "* 3", "origins")
    check_shape(directions, "* 3", "directions")
    if not origins.is_floating_point():
        origins = origins.to(directions.dtype if directions.is_floating_point() else torch.get_default_dtype())
    directions = directions.to(origins.dtype)
    check_finite(origins, "origins")
    check_finite(directions, "directions")
    try:
        o, d = torch.broadcast_tensors(origins, directions)
    except RuntimeError as err:
        raise ValueError(
            f"origins, directions: expected broadcastable shapes, got {tuple(origins.shape)} and "
            f"{tuple(directions.shape)}"
        ) from err
    if bool((directions.detach() == 0).all(dim=-1).any()):
        raise ValueError("directions: expected non-zero vectors, got a zero-length direction")
    batch = tuple(o.shape[:-1])
    return o.reshape(-1, 3), d.reshape(-1, 3), batch


def _intersect(p: _Packed, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entry/exit parameters of N lines with K primitives: three ``(N, K)`` tensors."""
    qo = torch.einsum("nkj,kji->nki", o[:, None, :] - p.center, p.rotation)
    qd = torch.einsum("nj,kji->nki", d, p.rotation)
    u = qo * p.inv_axes
    v = qd * p.inv_axes
    a = (v * v).sum(-1)
    has_a = a > 0  # False only for a ray parallel to a cylinder's axis
    a_safe = torch.where(has_a, a, torch.ones_like(a))
    # Shift to the point of closest approach in the scaled frame: the quadratic is then
    # a (t - t0)² + c0 = 0, free of the cancellation of the textbook formula.
    t0 = -(u * v).sum(-1) / a_safe
    u0 = u + t0[..., None] * v
    c0 = (u0 * u0).sum(-1) - 1
    inside = c0 < 0
    half = torch.sqrt(torch.where(inside, -c0, torch.ones_like(c0)) / a_safe)
    inf = torch.full_like(a, math.inf)
    t_in = torch.where(has_a, t0 - half, -inf)
    t_out = torch.where(has_a, t0 + half, inf)
    hit = torch.where(has_a, inside, (u * u).sum(-1) < 1)
    # Half-spaces n · (qo + t qd) <= b.
    n_o = torch.einsum("nki,kpi->nkp", qo, p.normals)
    n_d = torch.einsum("nki,kpi->nkp", qd, p.normals)
    gap = p.offsets - n_o
    t_plane = gap / torch.where(n_d != 0, n_d, torch.ones_like(n_d))
    inf_p = torch.full_like(t_plane, math.inf)
    t_out = torch.minimum(t_out, torch.where(n_d > 0, t_plane, inf_p).amin(-1))
    t_in = torch.maximum(t_in, torch.where(n_d < 0, t_plane, -inf_p).amax(-1))
    hit = hit & torch.where(n_d == 0, gap >= 0, torch.ones_like(hit[..., None])).all(-1) & (t_in < t_out)
    zero = torch.zeros_like(a)
    return torch.where(hit, t_in, zero), torch.where(hit, t_out, zero), hit


def _contains_xyz(prim: Primitive, px: Tensor, py: Tensor, pz: Tensor) -> Tensor:
    """Closed-set membership of world points given as broadcastable coordinate tensors.

    Used by point queries and by voxelisation alike (with 1-D grid axes broadcast against each
    other), so both give bit-identical answers for the same coordinates.
    """
    cx, cy, cz = prim.center
    dx, dy, dz = px - cx, py - cy, pz - cz
    q = []
    for i in range(3):
        terms = [dv * r[i] for dv, r in zip((dx, dy, dz), prim.rotation) if r[i] != 0.0]
        acc = terms[0]
        for term in terms[1:]:
            acc = acc + term
        q.append(acc)
    total = None
    for qi, s in zip(q, prim.quadric_scale):
        if s != 0.0:
            sq = (qi * s) ** 2
            total = sq if total is None else total + sq
    inside = total <= 1  # type: ignore[operator]
    for nx, ny, nz, b in prim.planes:
        dot = None
        for qi, n in zip(q, (nx, ny, nz)):
            if n != 0.0:
                dot = qi * n if dot is None else dot + qi * n
        inside = inside & (dot <= b)  # type: ignore[operator]
    return inside
