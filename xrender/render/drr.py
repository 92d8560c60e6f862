r"""`render`: digitally reconstructed radiographs by the Projective Spatial Transformer.

For each pixel centre a ray leaves the X-ray source; it is mapped into the volume's voxel-index
space, clipped to the volume's content box and marched by a backend
(`xrender.render.backend`): midpoint samples, trilinear interpolation with zero padding,
$\sum_k V(x_k)\,\Delta_r$. The result is the line integral

$$
P(u, v) = \int V\big(s + t\,\hat d(u, v)\big)\,dt
$$

in (voxel value) × mm — for a volume of μ in mm⁻¹, the dimensionless optical depth; with
``beer_lambert=True``, the transmitted intensity $I_0\,e^{-P}$.

**Host reads.** `render` is an entry point: it reads one boolean each for the pose and the
pixels (are they finite?). Beyond that it reads the level's content box and voxel spacing once
when a plain `Volume` is passed (one read; pass a `VolumePyramid`, or use
`xrender.render.module.DRR`, to read them once per volume), and the pose when
``level="auto"``. The options (`RenderOptions`) were checked when they were built; nothing is read
per ray or per chunk, and the functions it calls check no values.

**Memory.** Pixels are rendered in chunks — rays built, clipped and marched one chunk at a
time — whose ``grid_sample`` temporaries stay under ``max_memory_mb``, estimated per ray as
``max_samples`` × itemsize × the backend's `floats_per_sample` (``12 + 2 C`` for
``grid_sample``); a chunk holds at least one pixel for every pose. A fused backend, whose memory
does not grow with the samples, renders all rays at once. When gradients are needed and there
are several chunks, each chunk is checkpointed (`torch.utils.checkpoint`): its activations are
recomputed during the backward pass instead of kept, so the backward pass stays within the same
budget. Beyond the chunk, memory grows only with the output and the pixel coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from jaxtyping import Float
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.geometry.parameterizations import Parameterization, get_parameterization
from xrender.render.backend import BACKENDS, RenderBackend
from xrender.render.options import DEFAULT_STEP_FRACTION, RenderOptions
from xrender.render.pyramid import VolumePyramid, auto_level
from xrender.render.rays import ContentBox, clip_to_box, sample_bound, sample_counts, to_index_space, world_rays
from xrender.volume import Volume

__all__ = [
    "RenderPlan",
    "as_pyramid",
    "choose_backend",
    "plan_render",
    "render",
    "trace_rays",
]


def choose_backend(name: str, device: torch.device) -> RenderBackend:
    """Build the backend ``name``; ``"auto"``: ``"fused-cpu"`` for a CPU volume if registered, else ``"grid_sample"``.

    ``"auto"`` cannot know whether a second derivative will be taken: on the CPU it picks the fused
    backend, which raises on double backward. Pass ``"grid_sample"`` for second-order gradients.

    Raises:
        ValueError: unknown name (the message lists the registered backends).

    Examples:
        >>> import torch
        >>> from xrender.render import choose_backend
        >>> type(choose_backend("grid_sample", torch.device("cpu"))).__name__
        'GridSampleBackend'
        >>> type(choose_backend("auto", torch.device("cpu"))).__name__  # numba's fused kernel on the CPU
        'FusedCPUBackend'
    """
    if name == "auto":
        name = "fused-cpu" if "fused-cpu" in BACKENDS and device.type == "cpu" else "grid_sample"
    return BACKENDS.get(name)


def as_pyramid(volume: Volume | VolumePyramid) -> VolumePyramid:
    """``volume`` as a `VolumePyramid` (a pyramid is returned as is).

    Raises:
        TypeError: neither a `Volume` nor a `VolumePyramid`.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.render import VolumePyramid
        >>> from xrender.render.drr import as_pyramid
        >>> volume = Volume(torch.ones(1, 8, 8, 8), torch.eye(4))
        >>> as_pyramid(volume).volume is volume
        True
        >>> pyramid = VolumePyramid(volume)
        >>> as_pyramid(pyramid) is pyramid  # a pyramid (and its cached levels) is kept
        True
    """
    if isinstance(volume, VolumePyramid):
        return volume
    if not isinstance(volume, Volume):
        raise TypeError(f"volume: expected a Volume or a VolumePyramid, got {type(volume).__name__}")
    return VolumePyramid(volume)


def _poses(pose: Tensor, parameterization: str | Parameterization | None) -> Float[Tensor, "B 4 4"]:
    """``(B, 4, 4)`` poses from matrices or parameter vectors (``(4, 4)`` and ``(P,)`` are one pose)."""
    if parameterization is not None:
        param = get_parameterization(parameterization) if isinstance(parameterization, str) else parameterization
        pose = param.to_pose(pose)
    check_finite(check_shape(pose, "* 4 4", "pose"), "pose")
    if pose.ndim not in (2, 3):
        raise ValueError(f"pose: expected shape (4, 4) or (B, 4, 4), got {tuple(pose.shape)}")
    return pose.reshape(-1, 4, 4)


def _pixels(pixels: Tensor | None, geometry: ConeBeam, batch: int, like: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``(1 or B, N, 2)`` pixel coordinates and the trailing output shape (``(H, W)`` or ``(N,)``)."""
    if pixels is None:
        grid = geometry.pixel_grid(dtype=like.dtype, device=like.device)
        return grid.reshape(1, -1, 2), (geometry.height, geometry.width)
    check_finite(check_shape(pixels, "* N 2", "pixels"), "pixels")
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[0] not in (1, batch)):
        raise ValueError(f"pixels: expected shape (N, 2) or ({batch}, N, 2), got {tuple(pixels.shape)}")
    pixels = pixels.to(dtype=like.dtype, device=like.device)
    return pixels.reshape(-1, *pixels.shape[-2:]), (pixels.shape[-2],)


@dataclass(frozen=True)
class RenderPlan:
    """What a render call resolved before marching: the backend, the level, the sampling and the pixels.

    Attributes:
        marcher: the backend.
        grid: the pyramid level rendered.
        box: its content box.
        sampling: ``{"step_mm": …, "n_samples": …}`` (exactly one set).
        K: the intrinsic matrix, in the poses' dtype and device.
        pixels: pixel coordinates ``(1 or B, N, 2)``.
        shape: the trailing output shape, ``(H, W)`` or ``(N,)``.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import RenderOptions
        >>> from xrender.render.drr import plan_render
        >>> volume = Volume(torch.ones(1, 8, 8, 8, dtype=torch.float64), torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(20.0, 20.0), sid=500.0)
        >>> poses = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> plan = plan_render(volume, geometry, poses, pixels=None, options=RenderOptions(backend="grid_sample"))
        >>> type(plan.marcher).__name__, plan.grid is volume, plan.shape, tuple(plan.pixels.shape)
        ('GridSampleBackend', True, (4, 6), (1, 24, 2))
        >>> plan.sampling  # half the 2 mm voxel spacing
        {'step_mm': 1.0, 'n_samples': None}
    """

    marcher: RenderBackend
    grid: Volume
    box: ContentBox
    sampling: dict[str, float | int | None]
    K: Float[Tensor, "3 3"]
    pixels: Float[Tensor, "B N 2"]
    shape: tuple[int, ...]


def plan_render(
    volume: Volume | VolumePyramid,
    geometry: ConeBeam,
    poses: Float[Tensor, "B 4 4"],
    *,
    pixels: Tensor | None,
    options: RenderOptions,
) -> RenderPlan:
    """Resolve `render`'s options for ``poses``: the backend, the pyramid level, the sampling and the pixels.

    Args:
        volume: as in `render`.
        geometry: as in `render`.
        poses: camera-to-world poses ``(B, 4, 4)``, already checked and in the volume's dtype.
        pixels: as in `render`.
        options: as in `render`.

    Raises:
        TypeError: ``volume``, ``geometry`` or ``options`` of the wrong type.
        ValueError: a level above the volume's coarsest, or malformed ``pixels``.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import RenderOptions
        >>> from xrender.render.drr import plan_render
        >>> volume = Volume(torch.ones(1, 16, 16, 16, dtype=torch.float64), torch.eye(4))  # 1 mm voxels
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=4, pixel_spacing=(4.0, 4.0), sid=500.0)  # 2 mm at 500
        >>> poses = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> plan = plan_render(volume, geometry, poses, pixels=None, options=RenderOptions(level="auto", n_samples=32))
        >>> plan.grid.shape, plan.sampling  # "auto" picked level 1, 2 mm voxels
        ((8, 8, 8), {'step_mm': None, 'n_samples': 32})
    """
    pyramid = as_pyramid(volume)
    if not isinstance(geometry, ConeBeam):
        raise TypeError(f"geometry: expected a ConeBeam, got {type(geometry).__name__}")
    if not isinstance(options, RenderOptions):
        raise TypeError(f"options: expected a RenderOptions, got {type(options).__name__}")
    data = pyramid.volume.data
    marcher = choose_backend(options.backend, data.device)
    chosen = auto_level(pyramid.volume, geometry, poses) if options.level == "auto" else options.level
    grid, box = pyramid.level(chosen, channels_last=marcher.channels_last), pyramid.content_box(chosen)
    step_mm, n_samples = options.step_mm, options.n_samples
    if step_mm is None and n_samples is None:
        step_mm = DEFAULT_STEP_FRACTION * box.spacing_mm
    sampling = {"step_mm": step_mm, "n_samples": n_samples}
    uv, shape = _pixels(pixels, geometry, poses.shape[0], poses)
    K = geometry.intrinsics(dtype=poses.dtype, device=poses.device)
    return RenderPlan(marcher, grid, box, sampling, K, uv, shape)


def trace_rays(
    affine: Float[Tensor, "4 4"],
    box: ContentBox,
    K: Float[Tensor, "3 3"],
    sampling: dict[str, float | int | None],
    poses: Float[Tensor, "B 4 4"],
    pixels: Float[Tensor, "B N 2"],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:
    """Index-space rays for every pose and pixel: world rays → index space → clip → count.

    Args:
        affine: the level's voxel-index-to-world matrix.
        box: its content box (rays are clipped to it).
        K: the intrinsic matrix.
        sampling: ``{"step_mm": …, "n_samples": …}``, exactly one set (`sample_counts`).
        poses: camera-to-world poses.
        pixels: pixel coordinates, ``(1 or B, N, 2)``.

    Returns:
        ``(origins (B, N, 3), directions (B, N, 3), near (B, N), far (B, N), counts (B, N), bound)``,
        what `RenderBackend.march` takes once flattened.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import RenderOptions
        >>> from xrender.render.drr import plan_render, trace_rays
        >>> volume = Volume(torch.ones(1, 8, 8, 8, dtype=torch.float64), torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=1, width=1, pixel_spacing=(1.0, 1.0), sid=500.0)  # one central ray
        >>> poses = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> plan = plan_render(volume, geometry, poses, pixels=None, options=RenderOptions())
        >>> rays = trace_rays(volume.affine, plan.box, plan.K, plan.sampling, poses, plan.pixels)
        >>> origins, directions, near, far, counts, bound = rays
        >>> directions[0, 0].round(decimals=6).tolist()  # index space: half a voxel per mm, along +j (posterior)
        [0.0, 0.5, 0.0]
        >>> (far - near).item(), counts.item(), bound  # 18 mm in the box (the cube grown by one voxel), 1 mm steps
        (18.0, 18, 32)
    """
    source, directions = world_rays(pixels, poses, K)
    origins, directions = to_index_space(affine, source, directions)
    origins = origins.expand_as(directions)
    near, far = clip_to_box(origins, directions, box.lower, box.upper)
    counts, bound = sample_counts(near, far, box.diameter_mm, **sampling)
    return origins, directions, near, far, counts, bound


def _integrate(
    backend: RenderBackend,
    affine: Tensor,
    box: ContentBox,
    K: Tensor,
    sampling: dict[str, float | int | None],
    data: Float[Tensor, "C D H W"],
    poses: Float[Tensor, "B 4 4"],
    pixels: Float[Tensor, "B N 2"],
) -> Float[Tensor, "B N C"]:
    """Line integrals for every pose and pixel (`trace_rays`, then the backend's march)."""
    origins, directions, near, far, counts, bound = trace_rays(affine, box, K, sampling, poses, pixels)
    rays = (origins.reshape(-1, 3), directions.reshape(-1, 3), near.flatten(), far.flatten(), counts.flatten())
    return backend.march(data, *rays, bound).reshape(*near.shape, -1)


def _in_chunks(
    integrate: Callable[[Tensor, Tensor, Tensor], Tensor],
    data: Tensor,
    poses: Tensor,
    pixels: Tensor,
    pixels_per_chunk: float,
) -> Float[Tensor, "B N C"]:
    """``integrate(data, poses, pixels)`` over chunks of pixels, each checkpointed when gradients are needed."""
    if pixels.shape[-2] <= pixels_per_chunk:
        return integrate(data, poses, pixels)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (data, poses, pixels))
    parts = []
    for start in range(0, pixels.shape[-2], int(pixels_per_chunk)):
        chunk = pixels[..., start : start + int(pixels_per_chunk), :]
        if needs_grad:
            parts.append(checkpoint(integrate, data, poses, chunk, use_reentrant=False))
        else:
            parts.append(integrate(data, poses, chunk))
    return torch.cat(parts, dim=-2)


def render(
    volume: Volume | VolumePyramid,
    geometry: ConeBeam,
    pose: Float[Tensor, "*B 4 4"] | Float[Tensor, "*B P"],
    *,
    pixels: Float[Tensor, "*B N 2"] | None = None,
    options: RenderOptions = RenderOptions(),
    parameterization: str | Parameterization | None = None,
) -> Float[Tensor, "B C *S"]:
    """Render DRRs of a C-channel volume for a batch of poses.

    Args:
        volume: the volume (values per voxel, e.g. μ in mm⁻¹; air must be 0), or a
            `VolumePyramid` of it, which caches the content box and coarse levels across calls.
        geometry: the C-arm's intrinsics and detector.
        pose: camera-to-world poses ``(B, 4, 4)`` or one ``(4, 4)``; with ``parameterization``,
            parameter vectors ``(B, P)`` or ``(P,)``. Cast to the volume's dtype and device.
        pixels: render only these pixel coordinates ``(u, v)``, ``(N, 2)`` for every pose or
            ``(B, N, 2)``; coordinates outside the detector are allowed (rays are still defined).
            ``None``: the whole detector.
        options: the sampling, level, backend, memory budget and output (`RenderOptions`),
            e.g. ``RenderOptions(step_mm=1.0, backend="grid_sample")``.
        parameterization: a registered name (default options) or a `Parameterization` (e.g.
            ``get_parameterization("euler", convention="xyz", degrees=True)``) that turns
            ``pose`` parameter vectors into poses.

    Returns:
        ``(B, C, H, W)`` images for the whole detector, ``(B, C, N)`` for ``pixels``: line
        integrals in (voxel value) × mm, or intensities with ``beer_lambert``. In the volume's
        dtype; differentiable with respect to the pose (or its parameters), the volume's data and
        ``pixels``.

    Raises:
        ValueError: NaN/inf or malformed pose or pixels, or a level above the volume's coarsest
            (the options themselves were checked by `RenderOptions`).
        TypeError: ``volume``, ``geometry`` or ``options`` of the wrong type.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import render
        >>> affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))  # 2 mm voxels
        >>> volume = Volume(torch.full((1, 8, 8, 8), 0.02, dtype=torch.float64), affine)  # a 16 mm cube, μ = 0.02 / mm
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=4, pixel_spacing=(20.0, 20.0), sid=500.0)  # 10 mm at 500
        >>> pose = standard_pose("ap", 500.0, volume.isocenter)
        >>> image = render(volume, geometry, pose)
        >>> image.shape  # (B, C, H, W)
        torch.Size([1, 1, 4, 4])
        >>> image[0, 0].round(decimals=3).tolist()  # μ × 16 mm through the cube, 0 beside it
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.32, 0.32, 0.0], [0.0, 0.32, 0.32, 0.0], [0.0, 0.0, 0.0, 0.0]]
        >>> pixels = torch.tensor([[1.5, 1.5], [0.0, 0.0]])  # (u, v): the detector centre and the top-left pixel
        >>> render(volume, geometry, pose, pixels=pixels).round(decimals=3).tolist()  # (B, C, N)
        [[[0.32, 0.0]]]
    """
    pyramid = as_pyramid(volume)
    data = pyramid.volume.data
    poses = _poses(pose, parameterization).to(dtype=data.dtype, device=data.device)
    plan = plan_render(pyramid, geometry, poses, pixels=pixels, options=options)
    fixed, per_channel = plan.marcher.floats_per_sample
    floats_per_ray = sample_bound(plan.box.diameter_mm, **plan.sampling) * (fixed + per_channel * plan.grid.channels)
    budget = int(options.max_memory_mb * 2**20 / max(1, floats_per_ray * data.element_size()))
    pixels_per_chunk = max(1, budget // poses.shape[0]) if floats_per_ray else math.inf

    integrate = partial(_integrate, plan.marcher, plan.grid.affine, plan.box, plan.K, plan.sampling)
    integrals = _in_chunks(integrate, plan.grid.data, poses, plan.pixels, pixels_per_chunk)  # (B, N, C)
    images = integrals.transpose(-1, -2).reshape(poses.shape[0], -1, *plan.shape)
    return options.i0 * torch.exp(-images) if options.beer_lambert else images
