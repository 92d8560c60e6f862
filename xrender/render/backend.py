r"""The ray-marching contract every render backend implements, and the backend registry.

A backend integrates a C-channel volume along rays given in **continuous voxel-index space**
(the same ``(i, j, k)`` = ``(W, H, D)`` indices as `xrender.volume.Volume`, integer = voxel
centre). The renderer (`xrender.render.drr`) does the geometry: it builds world rays from
the C-arm, maps them into index space, clips them to the volume's content box and picks the
sample counts; a backend only marches.

**Sampling rule** (identical in every backend, so backends agree to rounding):

* ray ``r`` has length $L_r = \max(0, \mathrm{far}_r - \mathrm{near}_r)$ mm and
  ``n_r`` samples (``n_r = 0`` gives 0);
* $\Delta_r = L_r / n_r$ and sample $k$ sits at
  $t_k = \mathrm{near}_r + (k + \tfrac12)\Delta_r$, $k = 0, \dots, n_r - 1$ (midpoint rule);
* its position is $x_k = o_r + t_k\, e_r$ (index units; $e_r$ is the index-space displacement
  per mm of path);
* the value is the trilinear interpolation of the voxels at $x_k$ with **zero padding**: a
  neighbour outside the grid counts as 0 — exactly `torch.nn.functional.grid_sample` with
  ``align_corners=False`` and ``padding_mode="zeros"``;
* the result is $\sum_k V(x_k)\,\Delta_r$: the line integral in (voxel value) × mm.

Gradients flow to the volume, the origins, the directions, ``near`` and ``far`` (the sample
counts are integers and carry none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from jaxtyping import Float, Int
from torch import Tensor

from xrender._registry import Registry

__all__ = ["BACKENDS", "RenderBackend"]


class RenderBackend(ABC):
    """A way to integrate a volume along rays (see the module docstring for the exact rule).

    Examples:
        >>> import torch
        >>> from xrender.render import BACKENDS, RenderBackend
        >>> backend = BACKENDS.get("grid_sample")
        >>> isinstance(backend, RenderBackend), backend.supports_double_backward, backend.supports_jacobian
        (True, True, False)
        >>> data = torch.ones(1, 4, 4, 4, dtype=torch.float64)  # (C, D, H, W)
        >>> origins = torch.tensor([[-1.0, 1.5, 1.5]], dtype=torch.float64)  # index space (i, j, k)
        >>> directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)  # one voxel per mm along i
        >>> near, far = torch.tensor([0.0], dtype=torch.float64), torch.tensor([5.0], dtype=torch.float64)
        >>> integral = backend.march(data, origins, directions, near, far, torch.tensor([50]), 50)
        >>> round(integral.item(), 6)  # 3 voxels inside plus two half-voxel ramps to the zero padding
        4.0
    """

    #: Whether gradients of the output can themselves be differentiated (second order).
    supports_double_backward: bool = False

    #: Whether `march_jacobian` is implemented (the pose-Jacobian render, `xrender.render.render_jacobian`).
    supports_jacobian: bool = False

    #: The device types (``torch.device.type``) it renders on; ``None``: any device torch runs on.
    device_types: tuple[str, ...] | None = None

    #: Whether `march` reads a multi-channel volume fastest laid out channels last in memory; the
    #: renderer then passes a `VolumePyramid`'s cached channels-last copy of the level
    #: (`VolumePyramid.level`), so the layout is converted once per pyramid, not per render.
    channels_last: bool = False

    #: Floats of temporaries the backend holds per sample, ``(fixed, per channel)``, so the
    #: renderer can chunk rays under a memory budget; ``(0, 0)``: memory does not grow with the
    #: sample count (a fused kernel), and the renderer neither chunks nor checkpoints.
    floats_per_sample: tuple[int, int] = (0, 0)

    @abstractmethod
    def march(
        self,
        data: Float[Tensor, "C D H W"],
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        near: Float[Tensor, " R"],
        far: Float[Tensor, " R"],
        n_samples: Int[Tensor, " R"],
        max_samples: int,
    ) -> Float[Tensor, "R C"]:
        """Integrate ``data`` along ``R`` rays.

        Args:
            data: voxel values.
            origins: ray points at ``t = 0`` in continuous voxel indices ``(i, j, k)``.
            directions: index-space displacement per mm of path, ``(R, 3)``.
            near: start of the integration interval, mm along the ray.
            far: end of the integration interval, mm.
            n_samples: samples per ray (``>= 0``, ``<= max_samples``).
            max_samples: an upper bound on ``n_samples`` known without reading the tensor
                (so a backend can size buffers without a device sync).

        Returns:
            Line integrals in (voxel value) × mm, one row per ray.
        """

    def march_jacobian(
        self,
        data: Float[Tensor, "C D H W"],
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        near: Float[Tensor, " R"],
        far: Float[Tensor, " R"],
        n_samples: Int[Tensor, " R"],
        max_samples: int,
    ) -> tuple[Float[Tensor, "R C"], Float[Tensor, "R C 8"]]:
        """The integrals of `march` and each ray's Jacobian with respect to its own geometry.

        Integrals and Jacobians are linear in ``data``; both are differentiable with respect to
        it (first order). The rays are constants: they must not require grad.

        Returns:
            ``(integrals (R, C), jacobians (R, C, 8))`` with ``jacobians[r, c]`` =
            ``∂ integrals[r, c] / ∂ (origin (3), direction (3), near, far)``.

        Raises:
            NotImplementedError: the backend has no Jacobian march (`supports_jacobian` is false).
        """
        raise NotImplementedError(
            f"render backend {type(self).__name__} has no ray-Jacobian march; use backend='fused-cpu' (CPU) or "
            "differentiate the render twice with backend='grid_sample'"
        )


#: Registered backends by name; ``BACKENDS.get(name)`` builds one.
BACKENDS: Registry[RenderBackend] = Registry("render backend", RenderBackend)
