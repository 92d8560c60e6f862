r"""Rays for rendering: world rays through pixel centres, mapped to voxel-index space and clipped.

The renderer (`xrender.render.drr`) hands a backend rays in **continuous voxel-index space**
(see `xrender.render.backend`). This module builds them:

1. `world_rays`: one ray per pixel centre, from the X-ray source (the pose's translation) along a
   unit world direction $\hat d$ (`xrender.geometry.camera.pixel_rays`).
2. `to_index_space`: with the volume's affine $x_{\mathrm{world}} = A\,x_{\mathrm{index}} + b$,
   the origin becomes $o = A^{-1}(s - b)$ and the direction $e = A^{-1}\hat d$, the index-space
   displacement per mm of path, so the ray parameter $t$ stays in mm.
3. `clip_to_box`: the slab method against an index-space box gives the interval
   ``[near, far]`` (mm) inside it, starting no earlier than the source (``t >= 0``); rays that
   miss get ``near = far = 0``.
4. `sample_counts`: samples per ray, from a step length or a fixed count.

`ray_tangents` differentiates steps 1–3 analytically along given pose tangents (the geometry's
half of `xrender.render.render_jacobian`).

`content_box` finds the box worth sampling: the voxels that are non-zero in any channel, grown by
one voxel on each side. Trilinear interpolation with zero padding is exactly 0 outside it, so
clipping to it loses nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from xrender._checks import check_positive, check_shape
from xrender.geometry.camera import pixel_rays, pixels_to_camera

__all__ = [
    "PARALLEL_TOLERANCE",
    "ContentBox",
    "clip_to_box",
    "content_box",
    "ray_tangents",
    "sample_bound",
    "sample_counts",
    "to_index_space",
    "world_rays",
]

#: Index-space direction components smaller than this (voxels per mm) count as parallel to the
#: slab: over 10¹² mm such a ray moves less than one voxel along that axis.
PARALLEL_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ContentBox:
    """An index-space box ``[lower, upper]`` to clip rays to, its diameter and the grid's finest spacing.

    Attributes:
        lower: lowest ``(i, j, k)`` corner, continuous voxel indices, ``(3,)``.
        upper: highest corner, ``(3,)``.
        diameter_mm: the longest chord of the box in the world (its longest space diagonal), mm;
            an upper bound on every ray's length inside it.
        spacing_mm: the grid's smallest voxel spacing, mm (the default sampling step's unit),
            read on the host with the diameter.

    Examples:
        >>> import torch
        >>> from xrender.render import content_box
        >>> data = torch.zeros(1, 8, 8, 8)
        >>> data[0, 3:5, 3:5, 2:6] = 1.0  # non-zero voxels at k in 3..4, j in 3..4, i in 2..5
        >>> box = content_box(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> box.lower.tolist(), box.upper.tolist()  # (i, j, k), grown by one voxel
        ([1.0, 2.0, 2.0], [6.0, 5.0, 5.0])
        >>> round(box.diameter_mm, 3), box.spacing_mm  # the box's space diagonal, the smallest spacing
        (13.115, 2.0)
    """

    lower: Float[Tensor, "3"]
    upper: Float[Tensor, "3"]
    diameter_mm: float
    spacing_mm: float


def content_box(data: Float[Tensor, "C D H W"], affine: Float[Tensor, "4 4"]) -> ContentBox:
    """The index-space box holding every voxel that can contribute to a line integral.

    The box spans the voxels that are non-zero in any channel, grown by one voxel on each side:
    with zero padding, the trilinear interpolant vanishes at and beyond one voxel from the last
    non-zero voxel, so clipping rays to this box is exact. It falls back to the **full grid**
    grown by one voxel, ``[-1, W] × [-1, H] × [-1, D]``, when ``data`` requires grad (every
    voxel then has a gradient, zero or not) or holds no non-zero voxel.

    The extent is found on ``data``'s device; one host read (a device sync) then brings back the
    box, the affine's 3×3 part and the smallest voxel spacing: compute it once per volume, not
    per pose (`xrender.render.VolumePyramid` caches it).

    Args:
        data: voxel values.
        affine: the volume's voxel-index-to-world matrix (mm), on ``data``'s device.

    Returns:
        The box, in ``data``'s floating dtype and device.

    Examples:
        >>> import torch
        >>> from xrender.render import content_box
        >>> affine = torch.eye(4)
        >>> box = content_box(torch.ones(1, 4, 5, 6), affine)  # the whole grid, grown by one voxel
        >>> box.lower.tolist(), box.upper.tolist()
        ([-1.0, -1.0, -1.0], [6.0, 5.0, 4.0])
        >>> data = torch.zeros(1, 4, 5, 6)
        >>> data[0, 1, 2, 3] = 1.0  # one voxel: a box of three voxels around it
        >>> content_box(data, affine).lower.tolist(), content_box(data, affine).upper.tolist()
        ([2.0, 1.0, 0.0], [4.0, 3.0, 2.0])
    """
    check_shape(data, "C D H W", "data")
    sizes = data.shape[:0:-1]  # (W, H, D) along (i, j, k)
    linear = affine.detach()[:3, :3]
    extent = torch.tensor([-1, sizes[0], -1, sizes[1], -1, sizes[2], 0], device=data.device)
    if not data.requires_grad:
        occupied = (data.detach() != 0).any(0)  # (D, H, W)
        for axis, dims in enumerate(((0, 1), (0, 2), (1, 2))):  # (i, j, k) = (W, H, D)
            used = occupied.any(dim=dims).to(torch.uint8)
            first, last = used.argmax(), used.numel() - 1 - used.flip(0).argmax()  # first maximum: first True
            extent = torch.cat([extent[: 2 * axis], torch.stack([first - 1, last + 1]), extent[2 * axis + 2 :]])
        extent[-1] = occupied.any()
    wide = torch.promote_types(linear.dtype, torch.float32)  # voxel indices exact up to 2**24
    spacing = linear.norm(dim=0).min()[None].to(wide)
    packed = torch.cat([extent.to(wide), linear.to(wide).flatten(), spacing]).tolist()
    bounds, flag, matrix, spacing = packed[:6], packed[6], np.array(packed[7:16]).reshape(3, 3), packed[16]
    if not flag:  # nothing occupied (or not looked at): the full grid grown by one voxel
        bounds = [-1.0, sizes[0], -1.0, sizes[1], -1.0, sizes[2]]
    lower, upper = np.array(bounds[0::2], dtype=np.float64), np.array(bounds[1::2], dtype=np.float64)
    edges = matrix * (upper - lower)  # box edge vectors in mm
    signs = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])
    diameter = float(np.linalg.norm(signs @ edges.T, axis=1).max())
    dtype = data.dtype if data.is_floating_point() else torch.get_default_dtype()
    lower_t, upper_t = (torch.tensor(b, dtype=dtype, device=data.device) for b in (lower, upper))
    return ContentBox(lower_t, upper_t, diameter, spacing)


def world_rays(
    pixels: Float[Tensor, "*B N 2"], pose: Float[Tensor, "*B 4 4"], K: Float[Tensor, "*B 3 3"]
) -> tuple[Float[Tensor, "*B 1 3"], Float[Tensor, "*B N 3"]]:
    """Rays from the source through pixel centres, in world mm.

    Args:
        pixels: pixel coordinates ``(u, v)``; broadcast against the poses.
        pose: camera-to-world poses.
        K: intrinsic matrix (pixels).

    Returns:
        ``(source, directions)``: the source ``(*B, 1, 3)`` (mm, broadcastable against the
        rays) and unit world directions ``(*B, N, 3)``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import world_rays
        >>> geometry = ConeBeam(sdd=1000.0, height=3, width=3, pixel_spacing=(1.0, 1.0), sid=500.0)
        >>> pose = standard_pose("ap", 500.0, torch.zeros(3, dtype=torch.float64))
        >>> pixels = geometry.pixel_grid(dtype=torch.float64).reshape(-1, 2)
        >>> source, directions = world_rays(pixels, pose, geometry.intrinsics(dtype=torch.float64))
        >>> source.round().int().tolist(), tuple(directions.shape)  # the source 500 mm anterior; 9 unit directions
        ([[0, -500, 0]], (9, 3))
        >>> directions[4].round().int().tolist()  # the central pixel looks posterior
        [0, 1, 0]
    """
    source, directions = pixel_rays(pixels, pose, K)
    return source.unsqueeze(-2), directions


def to_index_space(
    affine: Float[Tensor, "4 4"], origins: Float[Tensor, "*B 3"], directions: Float[Tensor, "*B 3"]
) -> tuple[Float[Tensor, "*B 3"], Float[Tensor, "*B 3"]]:
    """Map world rays (mm) to voxel-index space, keeping the ray parameter in mm.

    Args:
        affine: voxel-index-to-world matrix ``[A | b]``.
        origins: world points on the rays at ``t = 0``, mm.
        directions: world directions per mm of path (unit vectors for ``t`` in mm).

    Returns:
        ``(A⁻¹(origins − b), A⁻¹ directions)``: index-space origins and displacement per mm.

    Examples:
        >>> import torch
        >>> from xrender.render import to_index_space
        >>> affine = torch.tensor([[2.0, 0, 0, -7], [0, 2.0, 0, -7], [0, 0, 2.0, -7], [0, 0, 0, 1]])  # 2 mm voxels
        >>> origins, directions = torch.tensor([[-7.0, -7.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0]])  # world mm
        >>> index_origins, per_mm = to_index_space(affine, origins, directions)
        >>> index_origins.tolist(), per_mm.tolist()  # voxel (0, 0, 4); half a voxel per mm along k
        ([[0.0, 0.0, 4.0]], [[0.0, 0.0, 0.5]])
    """
    inverse = torch.linalg.inv(affine[:3, :3]).T
    return (origins - affine[:3, 3]) @ inverse, directions @ inverse


def clip_to_box(
    origins: Float[Tensor, "*B 3"],
    directions: Float[Tensor, "*B 3"],
    lower: Float[Tensor, "3"],
    upper: Float[Tensor, "3"],
) -> tuple[Float[Tensor, "*B"], Float[Tensor, "*B"]]:
    r"""Slab-method intersection of rays ``o + t e`` (``t >= 0``) with the box ``[lower, upper]``.

    Per axis, the ray is inside the slab for $t$ between $(\mathrm{lower} - o)/e$ and
    $(\mathrm{upper} - o)/e$; a direction component below `PARALLEL_TOLERANCE` makes the slab
    all or nothing, depending on whether the origin lies in it, so no division by zero and no
    NaN occur. ``near`` is the largest entry (at least 0: nothing behind the source counts) and
    ``far`` the smallest exit.

    Args:
        origins: ray origins (any consistent units, e.g. voxel indices); broadcast with
            ``directions``.
        directions: displacement per unit of ``t``.
        lower: the box's lowest corner.
        upper: the box's highest corner.

    Returns:
        ``(near, far)`` in units of ``t``, with ``near <= far``; both 0 for a ray that misses.

    Examples:
        >>> import torch
        >>> from xrender.render import clip_to_box
        >>> origins = torch.tensor([[-5.0, 0.5, 0.5], [-5.0, 3.0, 0.5]])
        >>> directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        >>> near, far = clip_to_box(origins, directions, torch.zeros(3), torch.ones(3))  # the unit box
        >>> near.tolist(), far.tolist()  # the first ray crosses it from t = 5 to 6; the second misses
        ([5.0, 0.0], [6.0, 0.0])
    """
    origins, directions = torch.broadcast_tensors(origins, directions)
    parallel = directions.abs() < PARALLEL_TOLERANCE
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    t_lower, t_upper = (lower - origins) / safe, (upper - origins) / safe
    inside = (origins >= lower) & (origins <= upper)
    infinity = torch.full_like(origins, math.inf)
    entry = torch.where(parallel, torch.where(inside, -infinity, infinity), torch.minimum(t_lower, t_upper))
    exit_ = torch.where(parallel, torch.where(inside, infinity, -infinity), torch.maximum(t_lower, t_upper))
    near = entry.amax(-1).clamp(min=0.0)
    far = exit_.amin(-1)
    hit = far > near
    return torch.where(hit, near, torch.zeros_like(near)), torch.where(hit, far, torch.zeros_like(far))


def sample_bound(diameter_mm: float, *, step_mm: float | None = None, n_samples: int | None = None) -> int:
    """The most samples any ray can get (see `sample_counts`), known without reading a tensor.

    Raises:
        ValueError: both or neither of ``step_mm`` and ``n_samples``, or a non-positive one.

    Examples:
        >>> from xrender.render import sample_bound
        >>> sample_bound(18.5, step_mm=1.0), sample_bound(18.5, n_samples=64)
        (19, 64)
    """
    if (step_mm is None) == (n_samples is None):
        raise ValueError(f"expected exactly one of step_mm and n_samples, got {step_mm=}, {n_samples=}")
    if n_samples is not None:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples: expected a positive int, got {n_samples!r}")
        return n_samples
    check_positive(step_mm, "step_mm")
    return max(1, math.ceil(diameter_mm / step_mm))


def sample_counts(
    near: Float[Tensor, "*B"],
    far: Float[Tensor, "*B"],
    diameter_mm: float,
    *,
    step_mm: float | None = None,
    n_samples: int | None = None,
) -> tuple[Int[Tensor, "*B"], int]:
    r"""Samples per ray and a static bound on them, from exactly one of a step or a count.

    * ``step_mm``: $n_r = \lceil L_r / \mathrm{step} \rceil$ with $L_r = \mathrm{far} - \mathrm{near}$,
      so samples are at most ``step_mm`` apart; the bound is
      $\lceil \mathrm{diameter} / \mathrm{step} \rceil$ (no ray is longer than the box's diameter).
    * ``n_samples``: $n_r = n$ for every ray that meets the box, 0 otherwise. The sample
      positions then move smoothly with the pose, the choice for gradient checks.

    Args:
        near: start of each ray's interval, mm.
        far: end, mm.
        diameter_mm: the box's longest chord (`ContentBox.diameter_mm`).
        step_mm: largest distance between samples, mm.
        n_samples: fixed samples per ray.

    Returns:
        ``(counts, max_samples)``: ``int64`` counts shaped like ``near`` and their bound
        (`sample_bound`).

    Raises:
        ValueError: both or neither of ``step_mm`` and ``n_samples``, or a non-positive one.

    Examples:
        >>> import torch
        >>> from xrender.render import sample_counts
        >>> near, far = torch.tensor([0.0, 2.0, 0.0]), torch.tensor([10.0, 4.5, 0.0])  # the last ray misses the box
        >>> counts, bound = sample_counts(near, far, 20.0, step_mm=1.0)
        >>> counts.tolist(), bound  # ceil(length / step)
        ([10, 3, 0], 20)
        >>> sample_counts(near, far, 20.0, n_samples=8)[0].tolist()  # the same count on every ray that meets the box
        [8, 8, 0]
    """
    bound = sample_bound(diameter_mm, step_mm=step_mm, n_samples=n_samples)
    length = (far - near).detach()
    if n_samples is not None:
        return torch.where(length > 0, n_samples, 0), bound
    return torch.ceil(length / step_mm).long().clamp(0, bound), bound


def _slab_tangent(
    t: Tensor, axis: Tensor, origins: Tensor, directions: Tensor, d_origins: Tensor, d_directions: Tensor
) -> Tensor:
    """``dt`` of the slab crossing ``t = (bound − o_a) / e_a`` on ``axis`` a: ``−(do_a + t · de_a) / e_a``."""
    pick = axis[..., None]
    e = directions.gather(-1, pick)[..., 0]
    do = d_origins.gather(-1, pick.expand(*d_origins.shape[:-1], 1))[..., 0]
    de = d_directions.gather(-1, pick.expand(*d_directions.shape[:-1], 1))[..., 0]
    return -(do + t * de) / e


def ray_tangents(
    pixels: Float[Tensor, "*B N 2"],
    pose: Float[Tensor, "*B 4 4"],
    pose_tangents: Float[Tensor, "P *B 4 4"],
    K: Float[Tensor, "3 3"],
    affine: Float[Tensor, "4 4"],
    lower: Float[Tensor, "3"],
    upper: Float[Tensor, "3"],
) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Float[Tensor, "*B N 8 P"]]:
    r"""The clipped index-space rays of ``pose`` and their derivative along each pose tangent.

    The rays are those of `world_rays` → `to_index_space` → `clip_to_box`; the tangents are their
    exact first derivatives when the pose moves along ``pose_tangents[p]`` (``dT = [dR | ds]``):

    * origin: $do = A^{-1} ds$;
    * direction: with $w = R c$ for the pixel's camera ray $c$ and $\hat d = w / |w|$,
      $d\hat d = (dR\,c - \hat d\,(\hat d \cdot dR\,c)) / |w|$ and $de = A^{-1} d\hat d$;
    * ``near`` and ``far``: the slab crossing $t = (b - o_a)/e_a$ that sets each moves by
      $-(do_a + t\,de_a)/e_a$; 0 where ``near`` is clamped at the source, on a ray that misses,
      and on axes the ray runs parallel to.

    Ties between slabs (a ray through a box edge) have measure zero; there, the first axis counts.

    Args:
        pixels: pixel coordinates, ``(1 or B, N, 2)``-like, broadcast against the poses.
        pose: camera-to-world poses.
        pose_tangents: ``P`` tangents of the poses (the same shape each).
        K: intrinsic matrix.
        affine: the volume's voxel-index-to-world matrix.
        lower: the box's lowest corner (index space).
        upper: its highest corner.

    Returns:
        ``((origins, directions, near, far), tangents)``: the rays as `clip_to_box` gives them (origins
        ``(*B, N, 3)``) and ``(*B, N, 8, P)`` derivatives of (origin, direction, near, far).

    Examples:
        >>> import torch
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render.rays import ray_tangents
        >>> geometry = ConeBeam(sdd=1000.0, height=2, width=2, pixel_spacing=(1.0, 1.0), sid=500.0)
        >>> pose = standard_pose("ap", 500.0, torch.zeros(3, dtype=torch.float64))[None]
        >>> shift_x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
        >>> shift_x[..., 0, 3] = 1.0  # one tangent: the source moves along world +x
        >>> affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
        >>> pixels = geometry.pixel_grid(dtype=torch.float64).reshape(1, -1, 2)
        >>> K = geometry.intrinsics(dtype=torch.float64)
        >>> lower, upper = torch.full((3,), -20.0, dtype=torch.float64), torch.full((3,), 20.0, dtype=torch.float64)
        >>> (origins, directions, near, far), tangents = ray_tangents(pixels, pose, shift_x, K, affine, lower, upper)
        >>> tuple(tangents.shape)  # (B, N, origin 3 + direction 3 + near + far, P)
        (1, 4, 8, 1)
        >>> tangents[0, 0, :3, 0].tolist()  # the origins move by half a voxel along i per mm
        [0.5, 0.0, 0.0]
    """
    source, world = world_rays(pixels, pose, K)  # (*B, 1, 3), (*B, N, 3)
    ones = torch.ones(pixels.shape[:-2], dtype=pixels.dtype, device=pixels.device)
    camera = pixels_to_camera(pixels, K, ones)  # c, (*B, N, 3)
    length = (camera @ pose[..., :3, :3].transpose(-1, -2)).norm(dim=-1, keepdim=True)  # |R c|
    inverse = torch.linalg.inv(affine[:3, :3]).T
    origins, directions = to_index_space(affine, source, world)
    origins = origins.expand_as(directions)
    near, far = clip_to_box(origins, directions, lower, upper)

    d_source = pose_tangents[..., None, :3, 3]  # (P, *B, 1, 3)
    d_w = camera @ pose_tangents[..., :3, :3].transpose(-1, -2)  # (P, *B, N, 3)
    d_world = (d_w - world * (world * d_w).sum(-1, keepdim=True)) / length
    d_origins = (d_source @ inverse).expand_as(d_world)
    d_directions = d_world @ inverse

    parallel = directions.abs() < PARALLEL_TOLERANCE
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    t_lower, t_upper = (lower - origins) / safe, (upper - origins) / safe
    entry = torch.where(parallel, -math.inf, torch.minimum(t_lower, t_upper))
    exit_ = torch.where(parallel, math.inf, torch.maximum(t_lower, t_upper))
    entry_axis, exit_axis = entry.argmax(-1), exit_.argmin(-1)
    hit = far > near
    moves_near = hit & (entry.amax(-1) > 0)
    d_near = torch.where(moves_near, _slab_tangent(near, entry_axis, origins, safe, d_origins, d_directions), 0.0)
    d_far = torch.where(hit, _slab_tangent(far, exit_axis, origins, safe, d_origins, d_directions), 0.0)
    tangents = torch.cat([d_origins, d_directions, d_near[..., None], d_far[..., None]], -1)  # (P, *B, N, 8)
    return (origins, directions, near, far), tangents.movedim(0, -1)
