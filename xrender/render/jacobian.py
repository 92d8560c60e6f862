r"""`render_jacobian`: DRRs and their exact Jacobian with respect to pose parameters, in one march.

A DRR is linear in the volume $V$, and so is its derivative with respect to the pose. For pose
parameters $\xi$ (a twist, Euler angles …) and a pixel's ray with samples $x_k(\xi)$,

$$
\frac{\partial P}{\partial \xi} = \sum_k \nabla V(x_k)\cdot\frac{\partial x_k}{\partial \xi}\,\Delta
+ \text{(terms of the ray's end points)} ,
$$

which the fused kernel accumulates per ray in the same pass as the image: the ray's Jacobian with
respect to its own origin, direction, near and far (`RenderBackend.march_jacobian`). The
geometry's part, how those eight numbers move with $\xi$, involves no volume: the pose's tangents
come from forward-mode autodiff through ``pose_of`` (a few 4×4 matrices per parameter), and the
rays' from their closed form (`xrender.render.rays.ray_tangents`). The product is
$\partial P/\partial\xi$, exactly the derivative that autograd takes of `render` (to rounding).

Both outputs are differentiable with respect to the volume (first order, one scatter pass of the
fused kernel). That is what a gradient-driven loss needs: for a score $s(P)$, the pose gradient
$g = \sum_{\text{pixels}} \partial s/\partial P \cdot \partial P/\partial \xi$ reaches the weights
that made $V$ without differentiating the renderer twice (`xrender.similarity.prost.ProSTSimilarity`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.autograd.forward_ad as fwad
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.render.drr import as_pyramid, plan_render
from xrender.render.options import RenderOptions
from xrender.render.pyramid import VolumePyramid
from xrender.render.rays import ray_tangents, sample_counts
from xrender.volume import Volume

__all__ = ["render_jacobian"]


def _pose_tangents(
    pose_of: Callable[[Tensor], Tensor], params: Float[Tensor, "B P"]
) -> tuple[Float[Tensor, "B 4 4"], Float[Tensor, "P B 4 4"]]:
    """The poses at ``params`` and their derivative along each parameter (one forward-mode pass per parameter)."""
    batch, count = params.shape
    poses, tangents = None, []
    for p in range(count):
        direction = torch.zeros_like(params)
        direction[:, p] = 1.0
        with fwad.dual_level():
            primal, tangent = fwad.unpack_dual(pose_of(fwad.make_dual(params, direction)))
        check_shape(primal, f"{batch} 4 4", "pose_of(params)")
        if tangent is None:
            raise ValueError(
                "pose_of(params) is not differentiable by forward-mode autodiff (a .detach(), a numpy round "
                "trip, an in-place write, or torch.inference_mode()?): its Jacobian would be silently zero"
            )
        poses = primal
        tangents.append(tangent)
    return poses, torch.stack(tangents)


def render_jacobian(
    volume: Volume | VolumePyramid,
    geometry: ConeBeam,
    pose_of: Callable[[Float[Tensor, "B P"]], Float[Tensor, "B 4 4"]],
    params: Float[Tensor, "B P"],
    *,
    pixels: Float[Tensor, "*B N 2"] | None = None,
    options: RenderOptions = RenderOptions(),
) -> tuple[Float[Tensor, "B C *S"], Float[Tensor, "B C *S P"]]:
    r"""Render DRRs at ``pose_of(params)`` and their Jacobian $\partial P/\partial\,\text{params}$.

    The images equal ``render(volume, geometry, pose_of(params), …)`` and the Jacobian equals
    what autograd gives for that render (see the module docstring), in one march of the fused
    kernel instead of one backward pass per parameter or a double backward.

    Args:
        volume: the volume (C channels), or a `VolumePyramid` of it.
        geometry: the C-arm.
        pose_of: maps parameters ``(B, P)`` to camera-to-world poses ``(B, 4, 4)``; made of
            differentiable tensor operations (it is run under forward-mode autodiff). E.g. the
            volume twist about the isocentre,
            ``lambda xi: perturb(pose, se3_exp(xi), isocenter)`` at ``xi = 0``, or a
            `xrender.geometry.Parameterization`'s ``to_pose``.
        params: the parameters at which to render, ``(B, P)``.
        pixels: as in `render`.
        options: as in `render`, with a backend that has a Jacobian march
            (`RenderBackend.supports_jacobian`) or ``"auto"``, and line integrals
            (``beer_lambert=False``); ``max_memory_mb`` is not used (the march is fused: all
            rays at once).

    Returns:
        ``(images, jacobian)``: ``(B, C, H, W)`` and ``(B, C, H, W, P)`` for the whole detector
        (``(B, C, N)`` and ``(B, C, N, P)`` with ``pixels``), in the volume's dtype. Both are
        differentiable with respect to the volume's data (first order); neither with respect
        to ``params`` (the Jacobian is that derivative).

    Raises:
        ValueError: ``params`` not ``(B, P)`` or not finite, a backend without a Jacobian march
            (the message names the alternatives), ``beer_lambert``, or a level above the
            volume's coarsest.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, perturb, se3_exp, standard_pose
        >>> from xrender.render import RenderOptions, render, render_jacobian
        >>> data = torch.rand(1, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> volume = Volume(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=6, width=6, pixel_spacing=(5.0, 5.0), sid=500.0)
        >>> pose, iso = standard_pose("ap", 500.0, volume.isocenter), volume.isocenter
        >>> def pose_of(xi):  # a twist of the volume about its isocentre
        ...     return perturb(pose, se3_exp(xi), iso)
        >>> options = RenderOptions(n_samples=64)  # fixed samples: the image is smooth in the pose
        >>> xi = torch.zeros(1, 6, dtype=torch.float64)
        >>> images, jacobian = render_jacobian(volume, geometry, pose_of, xi, options=options)
        >>> tuple(images.shape), tuple(jacobian.shape)  # (B, C, H, W) and (B, C, H, W, P)
        ((1, 1, 6, 6), (1, 1, 6, 6, 6))
        >>> h = torch.zeros(1, 6, dtype=torch.float64)
        >>> h[0, 3] = 1e-4  # 0.1 µm along the camera's u axis
        >>> def drr(xi):
        ...     return render(volume, geometry, pose_of(xi), options=options)
        >>> difference = (drr(h) - drr(-h)) / 2e-4
        >>> torch.allclose(jacobian[..., 3], difference, atol=1e-6)  # the exact derivative
        True
    """
    check_finite(check_shape(params, "B P", "params"), "params")
    pyramid = as_pyramid(volume)
    data = pyramid.volume.data
    params = params.to(dtype=data.dtype, device=data.device)
    if params.shape[-1] < 1:
        raise ValueError("params: expected at least one parameter per pose, got shape (B, 0)")
    with torch.no_grad():
        poses, pose_tangents = _pose_tangents(pose_of, params)
    plan = plan_render(pyramid, geometry, poses, pixels=pixels, options=options)
    if options.beer_lambert:
        raise ValueError("render_jacobian: expected options with beer_lambert=False (it returns line integrals)")
    if not plan.marcher.supports_jacobian:
        raise ValueError(
            f"render_jacobian: backend {options.backend!r} ({type(plan.marcher).__name__}) has no Jacobian march; use "
            "backend='fused-cpu' on the CPU, or differentiate render() twice with backend='grid_sample'"
        )
    count = params.shape[-1]
    with torch.no_grad():
        box = plan.box
        rays, tangents = ray_tangents(plan.pixels, poses, pose_tangents, plan.K, plan.grid.affine, box.lower, box.upper)
        origins, directions, near, far = rays
        counts, bound = sample_counts(near, far, box.diameter_mm, **plan.sampling)
    flat = (origins.reshape(-1, 3), directions.reshape(-1, 3), near.flatten(), far.flatten(), counts.flatten())
    integrals, ray_jacobians = plan.marcher.march_jacobian(plan.grid.data, *flat, bound)  # (R, C), (R, C, 8)
    jacobian = torch.einsum("rck,rkp->rcp", ray_jacobians, tangents.reshape(-1, 8, count).to(ray_jacobians.dtype))
    batch, shape = params.shape[0], plan.shape
    images = integrals.reshape(batch, -1, integrals.shape[-1]).transpose(-1, -2).reshape(batch, -1, *shape)
    jacobian = jacobian.reshape(batch, -1, *jacobian.shape[-2:]).permute(0, 2, 1, 3).reshape(batch, -1, *shape, count)
    return images, jacobian
