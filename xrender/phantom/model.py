"""The `Phantom`: an ordered set of analytic primitives with exact line integrals.

Hounsfield model
    Start from air (−1000 HU) and visit the primitives in order. Inside a primitive with
    ``op="set"`` the value becomes its ``hu`` (painter's algorithm: later primitives win); inside
    one with ``op="add"`` its ``hu`` is added (the additive Shepp–Logan model). The value at a
    point therefore depends only on which primitives contain it.

Exact line integrals
    Each primitive is convex, so a line meets it in one interval. Along a ray the entry and exit
    parameters of all primitives cut it into segments on which the HU is constant; the integral
    of any pointwise transfer function ``f(HU)`` is then ``Σ f(HU_segment) · length_segment``,
    with no discretisation error. This is the reference a DRR renderer is validated against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.attenuation import HU_AIR
from xrender.landmarks import Landmarks
from xrender.phantom.primitives import Primitive, Vec3, _contains_xyz, _intersect, _rays, _vec3, pack
from xrender.volume import Volume

__all__ = ["Phantom"]


Transfer = Callable[[Tensor], Tensor]

# Elements per temporary tensor in chunked evaluation (bounds peak memory to ~100 MB).
_CHUNK = 1 << 22


def _default_transfer(hu: Tensor) -> Tensor:
    return hu - HU_AIR


def _triple(value: Any, name: str, integer: bool = False) -> tuple[Any, Any, Any]:
    arr = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,):
        raise ValueError(f"{name}: expected a number or 3 numbers, got {value!r}")
    if integer:
        if not all(float(v).is_integer() and v >= 1 for v in arr.tolist()):
            raise ValueError(f"{name}: expected positive integers, got {arr.tolist()}")
        return tuple(int(v) for v in arr.tolist())  # type: ignore[return-value]
    check_positive(arr.astype(np.float64), name)
    return tuple(float(v) for v in arr.tolist())  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Phantom:
    """An analytic phantom: ordered convex primitives, named landmarks, a centre.

    Attributes:
        primitives: the primitives in painting order (see the module docstring).
        landmarks: named world points in mm (LPS): a `Landmarks` or a
            mapping name → ``(x, y, z)``; stored as `Landmarks` (float64).
        center: world point ``(3,)`` mm; the centre of `to_volume` and its isocentre.
        fov_mm: default edge lengths of `to_volume`'s box along ``(x, y, z)`` in mm; ``None``
            means the smallest cube centred on ``center`` that encloses every primitive.

    Raises:
        ValueError: no primitives, a non-primitive entry, or a malformed landmark or centre.
    """

    primitives: tuple[Primitive, ...]
    landmarks: Landmarks | Mapping[str, Vec3] = field(default_factory=dict)
    center: Vec3 = (0.0, 0.0, 0.0)
    fov_mm: float | tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        prims = tuple(self.primitives)
        if not prims or not all(isinstance(p, Primitive) for p in prims):
            raise ValueError(f"Phantom.primitives: expected a non-empty sequence of Primitive, got {prims!r:.200}")
        object.__setattr__(self, "primitives", prims)
        if not isinstance(self.landmarks, Landmarks):
            marks = {str(k): _vec3(v, f"Phantom.landmarks[{k!r}]") for k, v in dict(self.landmarks).items()}
            names, points = tuple(marks), torch.tensor(list(marks.values()), dtype=torch.float64).reshape(-1, 3)
            object.__setattr__(self, "landmarks", Landmarks(names, points))
        object.__setattr__(self, "center", _vec3(self.center, "Phantom.center"))
        if self.fov_mm is not None:
            object.__setattr__(self, "fov_mm", _triple(self.fov_mm, "Phantom.fov_mm"))
        # float64 CPU copy of the parameters; cast per call to the rays' dtype and device.
        object.__setattr__(self, "_packed64", pack(prims, torch.float64, "cpu"))

    def __repr__(self) -> str:
        c = ", ".join(f"{v:g}" for v in self.center)
        return f"Phantom({len(self.primitives)} primitives, {len(self.landmarks)} landmarks, center=({c}) mm)"

    # ----------------------------------------------------------------------------- landmarks
    @property
    def landmark_names(self) -> tuple[str, ...]:
        """Landmark names in their stored order."""
        return self.landmarks.names  # type: ignore[union-attr]

    def landmark_array(
        self, names: Sequence[str] | None = None, dtype: torch.dtype = torch.float64, device: Any = None
    ) -> Float[Tensor, "L 3"]:
        """Landmarks stacked as a ``(L, 3)`` tensor of world points (mm).

        Args:
            names: which landmarks, in which order; default `landmark_names`.
            dtype: floating dtype of the result.
            device: device of the result.

        Raises:
            ValueError: an unknown name.
        """
        names = self.landmark_names if names is None else tuple(names)
        unknown = [n for n in names if n not in self.landmark_names]
        if unknown:
            raise ValueError(f"names: expected landmarks among {self.landmark_names}, got unknown {unknown}")
        points = torch.stack([self.landmarks[n] for n in names]) if names else torch.zeros(0, 3)  # type: ignore[index]
        return points.to(dtype=dtype, device=device)

    # ----------------------------------------------------------------------------- geometry
    def primitive(self, name: str) -> Primitive:
        """The first primitive called ``name``.

        Raises:
            KeyError: no primitive has that name.
        """
        for p in self.primitives:
            if p.name == name:
                return p
        raise KeyError(f"no primitive named {name!r}")

    def bounds(self) -> tuple[Float[Tensor, "3"], Float[Tensor, "3"]]:
        """World-axis-aligned box ``(lower, upper)`` (mm, float64) enclosing every primitive."""
        boxes = [p.bounding_box() for p in self.primitives]
        return torch.stack([b[0] for b in boxes]).amin(0), torch.stack([b[1] for b in boxes]).amax(0)

    def default_fov(self) -> tuple[float, float, float]:
        """Edge lengths ``(x, y, z)`` mm of `to_volume`'s default box (see ``fov_mm``)."""
        if self.fov_mm is not None:
            return self.fov_mm  # type: ignore[return-value]
        lo, hi = self.bounds()
        c = torch.tensor(self.center, dtype=torch.float64)
        edge = 2 * float(torch.maximum(hi - c, c - lo).max())
        return (edge, edge, edge)

    def translated(self, offset: Any) -> Phantom:
        """The phantom moved by ``offset`` ``(3,)`` mm: primitives, landmarks and centre."""
        shift = np.asarray(_vec3(offset, "offset"))
        marks = Landmarks(self.landmark_names, self.landmarks.points + torch.from_numpy(shift))  # type: ignore[union-attr]
        return Phantom(
            primitives=tuple(p.translated(shift) for p in self.primitives),
            landmarks=marks,
            center=tuple((np.asarray(self.center) + shift).tolist()),
            fov_mm=self.fov_mm,
        )

    # ----------------------------------------------------------------------------- values
    def contains(self, points: Float[Tensor, "*B 3"]) -> Bool[Tensor, "*B K"]:
        """Which primitives contain each world point (mm): a ``(*B, K)`` boolean tensor."""
        p = self._points(points)
        return torch.stack([_contains_xyz(q, p[..., 0], p[..., 1], p[..., 2]) for q in self.primitives], dim=-1)

    def hu(self, points: Float[Tensor, "*B 3"]) -> Float[Tensor, "*B"]:
        """Hounsfield units at world points (mm, LPS).

        Args:
            points: ``(*B, 3)``; integer tensors are converted to the default float dtype.

        Returns:
            HU of shape ``(*B,)`` in the points' floating dtype and device; −1000 outside every
            primitive.

        Raises:
            ValueError: wrong shape or non-finite points.
        """
        p = self._points(points)
        flat = p.reshape(-1, 3)
        out = torch.empty(flat.shape[0], dtype=p.dtype, device=p.device)
        step = max(1, _CHUNK // 8)
        for start in range(0, flat.shape[0], step):
            chunk = flat[start : start + step]
            out[start : start + step] = self._fold(chunk[:, 0], chunk[:, 1], chunk[:, 2], (chunk.shape[0],))
        return out.reshape(p.shape[:-1])

    def _points(self, points: Tensor) -> Tensor:
        check_shape(points, "* 3", "points")
        p = points if points.is_floating_point() else points.to(torch.get_default_dtype())
        return check_finite(p, "points")

    def _fold(self, px: Tensor, py: Tensor, pz: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Paint/add every primitive over air on points given by broadcastable coordinates."""
        val = torch.full(shape, HU_AIR, dtype=px.dtype, device=px.device)
        for prim in self.primitives:
            inside = _contains_xyz(prim, px, py, pz)
            new = val + prim.hu if prim.op == "add" else torch.full_like(val, prim.hu)
            val = torch.where(inside, new, val)
        return val

    # ----------------------------------------------------------------------------- integrals
    def line_integral(
        self,
        origins: Float[Tensor, "*B 3"],
        directions: Float[Tensor, "*B 3"],
        transfer: Transfer | None = None,
        near: float | Tensor = 0.0,
        far: float | Tensor = math.inf,
        chunk_size: int | None = None,
    ) -> Float[Tensor, "*B"]:
        """Exact integral of ``transfer(HU)`` along rays, in (transfer units) × mm.

        The ray is ``x(t) = origin + t · direction`` for ``near <= t <= far``, and the result is
        ``∫ transfer(HU(x(t))) · |direction| dt``: ``t`` is measured in units of ``direction``
        (mm for unit directions; ``t ∈ [0, 1]`` spans source to target for
        ``direction = target − source``), while the integral is always per mm of path, so unit
        and scaled directions give the same value over the same stretch of the ray.

        Exact for any pointwise ``transfer`` (the HU is piecewise constant along a ray), up to
        floating-point rounding; differentiable with respect to ``origins``, ``directions``,
        ``near``, ``far`` and parameters inside ``transfer``.

        Args:
            origins: ray origins, mm, ``(*B, 3)``.
            directions: ray directions, non-zero, ``(*B, 3)``; broadcast against ``origins``.
            transfer: elementwise map from HU to the integrated quantity; default
                ``HU + 1000`` (so air integrates to 0 and water to 1000 per mm). See
                an `xrender.attenuation.AttenuationModel` (e.g.
                ``get_attenuation_model("linear")``) for attenuation in mm⁻¹.
            near: start parameter, a float or a tensor; may be ``-inf``. Rays and bounds
                broadcast together, so one ray with ``(M,)`` bounds gives ``M`` results.
            far: end parameter (same rules); may be ``inf``.
            chunk_size: rays per chunk (default: bounded to ~4M elements per temporary).

        Returns:
            The integrals, shape ``(*B,)`` (broadcast with ``near``/``far``), in the rays' dtype
            and device; 0 for rays that miss every primitive (when ``transfer(-1000) = 0``).

        Raises:
            ValueError: wrong shapes, non-finite rays, a zero direction, NaN or reversed
                ``near``/``far``, a ``transfer`` that changes the shape, or an unbounded range
                with ``transfer(-1000) != 0`` (the integral over infinite air would diverge).
        """
        o, d, near_t, far_t, batch = self._prepare(origins, directions, near, far)
        dtype, device = o.dtype, o.device
        n_rays = o.shape[0]
        f = _default_transfer if transfer is None else transfer
        unbounded = bool((~torch.isfinite(near_t)).any() or (~torch.isfinite(far_t)).any())
        if unbounded:
            f_air = f(torch.full((1,), HU_AIR, dtype=dtype, device=device))
            if bool((f_air.detach() != 0).any()):
                raise ValueError(
                    f"transfer: expected transfer(-1000) == 0 for an unbounded ray (near={near}, far={far}), "
                    f"got {f_air.detach().flatten()[0].item():.6g}; give finite near and far"
                )
        packed = _cast(self._packed64, dtype, device)  # type: ignore[attr-defined]
        k = len(self.primitives)
        step = chunk_size if chunk_size is not None else max(1, _CHUNK // (16 * k))
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size}")
        out = [
            self._integrate(packed, o[s : s + step], d[s : s + step], near_t[s : s + step], far_t[s : s + step], f)
            for s in range(0, n_rays, step)
        ]
        result = torch.cat(out) if out else torch.zeros(0, dtype=dtype, device=device)
        return result.reshape(batch)

    @staticmethod
    def _prepare(
        origins: Tensor, directions: Tensor, near: float | Tensor, far: float | Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[int, ...]]:
        """Validate rays and bounds, broadcast them together and flatten: ``(N, 3)``, ``(N,)``."""
        o, d, batch = _rays(origins, directions)
        bounds = []
        for value, name in ((near, "near"), (far, "far")):
            t = torch.as_tensor(value, dtype=o.dtype, device=o.device)
            if bool(torch.isnan(t.detach()).any()):
                raise ValueError(f"{name}: expected a number or ±inf, got NaN")
            bounds.append(t)
        try:
            shape = torch.broadcast_shapes(batch, bounds[0].shape, bounds[1].shape)
        except RuntimeError as err:
            raise ValueError(
                f"near, far: expected shapes broadcastable to the rays' {batch}, got {tuple(bounds[0].shape)} "
                f"and {tuple(bounds[1].shape)}"
            ) from err
        near_t, far_t = (torch.broadcast_to(t, shape).reshape(-1) for t in bounds)
        if bool((near_t > far_t).any()):
            raise ValueError("near, far: expected near <= far for every ray, got near > far")
        if shape != batch:
            o = torch.broadcast_to(o.reshape(*batch, 3), (*shape, 3)).reshape(-1, 3)
            d = torch.broadcast_to(d.reshape(*batch, 3), (*shape, 3)).reshape(-1, 3)
        return o, d, near_t, far_t, tuple(shape)

    def _segments(self, p: Any, o: Tensor, d: Tensor, near: Tensor, far: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Constant-HU pieces of N rays: starts, ends (``t``) and HU, each ``(N, S)``."""
        t_in, t_out, hit = _intersect(p, o, d)  # (N, K)
        lo = torch.maximum(t_in, near[:, None])
        hi = torch.minimum(t_out, far[:, None])
        valid = hit & (lo < hi)
        # Keep, per ray, only the primitives met within [near, far] (in painting order): the
        # work below is quadratic in their number.
        order = torch.sort((~valid).to(torch.uint8), dim=-1, stable=True).indices
        kept = max(1, int(valid.sum(-1).max()))
        order = order[:, :kept]
        lo, hi, valid = lo.gather(1, order), hi.gather(1, order), valid.gather(1, order)
        # A finite stand-in for unused breakpoints: it only creates zero-length segments.
        first = torch.where(valid, lo, torch.full_like(lo, math.inf)).amin(-1)
        filler = torch.where(torch.isfinite(first), first, torch.zeros_like(first))
        filler = torch.where(torch.isfinite(near), near, filler)
        ends = torch.stack(
            [torch.where(torch.isfinite(near), near, filler), torch.where(torch.isfinite(far), far, filler)], dim=-1
        )
        lo = torch.where(valid, lo, filler[:, None])
        hi = torch.where(valid, hi, filler[:, None])
        points = torch.cat([lo, hi, ends], -1).sort(dim=-1).values
        a, b = points[:, :-1], points[:, 1:]
        mid = (0.5 * (a + b))[..., None]  # (N, S, 1)
        inside = valid[:, None, :] & (lo[:, None, :] <= mid) & (mid <= hi[:, None, :])  # (N, S, kept)
        return a, b, _fold_flags(inside, order[:, None, :], p.hu, p.is_add)

    def _integrate(self, p: Any, o: Tensor, d: Tensor, near: Tensor, far: Tensor, f: Transfer) -> Tensor:
        a, b, hu = self._segments(p, o, d, near, far)
        value = f(hu)
        if value.shape != hu.shape:
            raise ValueError(
                f"transfer: expected an elementwise map (output shape {tuple(hu.shape)}), got {tuple(value.shape)}"
            )
        return (value * (b - a)).sum(-1) * torch.linalg.vector_norm(d, dim=-1)

    def segments(
        self,
        origins: Float[Tensor, "*B 3"],
        directions: Float[Tensor, "*B 3"],
        near: float | Tensor = 0.0,
        far: float | Tensor = math.inf,
    ) -> tuple[Float[Tensor, "*B S"], Float[Tensor, "*B S"], Float[Tensor, "*B S"]]:
        """The HU profile along rays as constant pieces, in increasing ``t``.

        Same rays and ``t`` convention as `line_integral`. Pieces before the first and after
        the last primitive boundary are omitted when ``near``/``far`` are infinite. ``S`` is the
        same for every ray: rays with fewer pieces are padded with zero-length ones.

        Returns:
            ``(t_start, t_end, hu)``, each ``(*B, S)``; ``t_end - t_start >= 0``.

        Raises:
            ValueError: as for `line_integral`.
        """
        o, d, near_t, far_t, batch = self._prepare(origins, directions, near, far)
        packed = _cast(self._packed64, o.dtype, o.device)  # type: ignore[attr-defined]
        step = max(1, _CHUNK // (16 * len(self.primitives)))
        parts = [
            self._segments(packed, o[s : s + step], d[s : s + step], near_t[s : s + step], far_t[s : s + step])
            for s in range(0, o.shape[0], step)
        ]
        if not parts:
            empty = o.new_zeros((*batch, 0))
            return empty, empty, empty
        width = max(a.shape[1] for a, _, _ in parts)

        def pad(x: Tensor, value: Tensor | float) -> Tensor:
            fill = (
                value.expand(-1, width - x.shape[1])
                if isinstance(value, Tensor)
                else x.new_full((x.shape[0], width - x.shape[1]), value)
            )
            return torch.cat([x, fill], dim=1)

        starts = torch.cat([pad(a, b[:, -1:]) for a, b, _ in parts])
        ends = torch.cat([pad(b, b[:, -1:]) for _, b, _ in parts])
        hus = torch.cat([pad(h, HU_AIR) for _, _, h in parts])
        return starts.reshape(*batch, width), ends.reshape(*batch, width), hus.reshape(*batch, width)

    # ----------------------------------------------------------------------------- voxels
    def to_volume(
        self,
        size: int | Sequence[int] = 128,
        fov_mm: float | Sequence[float] | None = None,
        spacing: float | Sequence[float] | None = None,
        supersample: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Volume:
        """Voxelise the phantom into a one-channel HU `Volume`.

        The grid is axis-aligned in LPS (identity direction, orientation ``"LPS"``) and centred on
        `center`, which is also the isocentre. Sizes follow array order, physical lengths
        world order (like `Volume.spacing`).

        Args:
            size: voxels ``(D, H, W)`` (along z, y, x), or one int for a cube.
            fov_mm: box edge lengths ``(x, y, z)`` in mm (edge to edge: ``size · spacing``), or one
                number; default `default_fov`. Not together with ``spacing``.
            spacing: voxel size ``(x, y, z)`` in mm, or one number; overrides the field of view.
            supersample: ``s`` evaluates ``s³`` regularly spaced sub-samples per voxel and averages
                them (partial-volume edges); ``1`` samples the voxel centre only.
            dtype: floating dtype of the data.
            device: device of the data.

        Returns:
            The volume, ``data`` of shape ``(1, D, H, W)`` in HU.

        Raises:
            ValueError: non-positive or non-integer sizes, non-positive field of view, spacing or
                supersample, or both ``fov_mm`` and ``spacing`` given.
        """
        D, H, W = _triple(size, "size", integer=True)
        if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
            raise ValueError(f"supersample: expected a positive int, got {supersample!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
        if spacing is not None and fov_mm is not None:
            raise ValueError("fov_mm, spacing: expected at most one of them, got both")
        if spacing is not None:
            sp = np.asarray(_triple(spacing, "spacing"))
        else:
            fov = self.default_fov() if fov_mm is None else _triple(fov_mm, "fov_mm")
            sp = np.asarray(fov) / np.asarray([W, H, D], dtype=np.float64)
        counts = np.asarray([W, H, D])
        origin = np.asarray(self.center) - (counts - 1) / 2 * sp
        affine = np.eye(4)
        affine[:3, :3] = np.diag(sp)
        affine[:3, 3] = origin
        # Coordinates use the affine as stored in `dtype`, so `hu(volume.voxel_to_world(ijk))`
        # reproduces the voxel values exactly at supersample=1.
        aff = torch.as_tensor(affine, dtype=dtype, device=device)
        sp_t, org_t = aff.diagonal()[:3], aff[:3, 3]
        s = supersample
        fine_sp = sp_t / s
        fine_org = org_t - (s - 1) / (2 * s) * sp_t
        axes = [
            fine_org[i] + torch.arange(int(counts[i]) * s, dtype=dtype, device=device) * fine_sp[i] for i in range(3)
        ]
        boxes = [p.bounding_box() for p in self.primitives]
        ranges = [
            _index_ranges(
                lo.numpy(), hi.numpy(), fine_org.double().cpu().numpy(), fine_sp.double().cpu().numpy(), counts * s
            )
            for lo, hi in boxes
        ]
        data = torch.empty((D, H, W), dtype=dtype, device=device)
        slab = max(1, _CHUNK // (H * W * s**3))
        for z0 in range(0, D, slab):
            z1 = min(D, z0 + slab)
            fz0, fz1 = z0 * s, z1 * s
            block = torch.full((fz1 - fz0, H * s, W * s), HU_AIR, dtype=dtype, device=device)
            for prim, ((x0, x1), (y0, y1), (zz0, zz1)) in zip(self.primitives, ranges):
                a0, a1 = max(zz0, fz0), min(zz1, fz1)
                if a0 >= a1 or x0 >= x1 or y0 >= y1:
                    continue
                px = axes[0][x0:x1].view(1, 1, -1)
                py = axes[1][y0:y1].view(1, -1, 1)
                pz = axes[2][a0:a1].view(-1, 1, 1)
                inside = _contains_xyz(prim, px, py, pz)
                view = block[a0 - fz0 : a1 - fz0, y0:y1, x0:x1]
                new = view + prim.hu if prim.op == "add" else torch.full_like(view, prim.hu)
                view.copy_(torch.where(inside, new, view))
            if s > 1:
                block = block.view(z1 - z0, s, H, s, W, s).mean(dim=(1, 3, 5))
            data[z0:z1] = block
        return Volume(data[None], aff, isocenter=torch.as_tensor(self.center, dtype=dtype, device=device))


def _index_ranges(
    lo: np.ndarray, hi: np.ndarray, origin: np.ndarray, spacing: np.ndarray, counts: np.ndarray
) -> tuple[tuple[int, int], ...]:
    """Per axis, the half-open index range of grid points inside ``[lo, hi]`` (padded by one)."""
    out = []
    for i in range(3):
        first = math.floor((lo[i] - origin[i]) / spacing[i]) - 1
        last = math.ceil((hi[i] - origin[i]) / spacing[i]) + 2
        out.append((int(min(max(first, 0), counts[i])), int(min(max(last, 0), counts[i]))))
    return tuple(out)


def _cast(p: Any, dtype: torch.dtype, device: Any) -> Any:
    return type(p)(*(t.to(device=device) if t.dtype == torch.bool else t.to(dtype=dtype, device=device) for t in p))


def _fold_flags(inside: Tensor, index: Tensor, hu: Tensor, is_add: Tensor) -> Tensor:
    """HU from containment flags: the last 'set' primitive containing a point, plus later 'add' ones.

    Args:
        inside: ``(..., J)`` flags for J candidate primitives.
        index: ``(..., J)`` (broadcastable) their positions in the painting order.
        hu: ``(K,)`` values of all primitives; ``is_add``: ``(K,)`` their ops.
    """
    rank = index + 1  # 0 stands for "none": air
    add = is_add[index]
    last_set = torch.where(inside & ~add, rank, torch.zeros_like(rank)).amax(-1)
    table = torch.cat([hu.new_full((1,), HU_AIR), torch.where(is_add, torch.zeros_like(hu), hu)])
    adds = inside & add & (rank > last_set[..., None])
    return table[last_set] + torch.where(adds, hu[index], torch.zeros_like(hu[index])).sum(-1)
