r"""The reference backend: every sample through `torch.nn.functional.grid_sample`.

This is the Projective Spatial Transformer's engine: build all sample points of all rays as one
5-D sampling grid, interpolate the volume trilinearly, weight and sum. Pure PyTorch, so it runs on
every device and autograd differentiates it to any order (``grid_sample`` has a double
backward), which is what gradient-of-gradient training losses need.

Index coordinates map to ``grid_sample``'s normalised coordinates for ``align_corners=False`` as

$$
g = \frac{2x + 1}{N} - 1
$$

per axis, with $N$ the size along that axis: $x \leftrightarrow W$, $y \leftrightarrow H$,
$z \leftrightarrow D$, so voxel centre $x = 0$ lands at $g = 1/N - 1$ and the grid's outer faces
$x = -\tfrac12$ and $x = N - \tfrac12$ at $g = \mp 1$.

Memory: the grid, the sampled values and their autograd buffers are ``(R, max_samples)``-sized;
the renderer chunks rays to bound them (`GridSampleBackend.floats_per_sample`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn.functional import grid_sample

from xrender.render.backend import BACKENDS, RenderBackend

__all__ = ["GridSampleBackend"]


class GridSampleBackend(RenderBackend):
    """Trilinear ray marching with ``grid_sample`` (zero padding, ``align_corners=False``).

    Differentiable to second order with respect to the volume and all ray inputs.

    Examples:
        >>> import torch
        >>> from xrender.render import GridSampleBackend
        >>> data = torch.zeros(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
        >>> origins = torch.tensor([[1.5, 1.5, -1.0], [1.5, 1.5, -1.0]], dtype=torch.float64)
        >>> directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.5]], dtype=torch.float64)  # along k
        >>> near, far = torch.zeros(2, dtype=torch.float64), torch.tensor([5.0, 10.0], dtype=torch.float64)
        >>> integrals = GridSampleBackend().march(data + 1, origins, directions, near, far, torch.tensor([20, 40]), 40)
        >>> integrals.round(decimals=6).tolist()  # (R, C), in voxel value × mm
        [[4.0], [8.0]]
        >>> (grad,) = torch.autograd.grad(integrals.sum(), data, create_graph=True)  # second order is supported
        >>> round(grad.sum().item(), 6)
        12.0
    """

    supports_double_backward = True
    #: The sample parameter, the 3-D grid, the weights and their gradients (12), plus each
    #: channel's sampled value and its gradient (2 per channel).
    floats_per_sample = (12, 2)

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
        """Integrate ``data`` along ``R`` index-space rays (see `xrender.render.backend`)."""
        sizes = torch.tensor(data.shape[:0:-1], dtype=data.dtype, device=data.device)  # (W, H, D)
        counts = n_samples.to(data.dtype)
        step = (far - near).clamp(min=0.0) / counts.clamp(min=1.0)  # Δ_r, mm
        # g = (2x + 1)/N − 1 with x = o + t e and t = near + (k + ½) Δ: g = first + (k + ½) · stride
        grid_direction = 2 * directions / sizes
        first = (2 * origins + 1) / sizes - 1 + near[:, None] * grid_direction  # (R, 3)
        stride = step[:, None] * grid_direction  # (R, 3)
        k = torch.arange(max_samples, dtype=data.dtype, device=data.device)
        grid = torch.addcmul(first[:, None, :], (k + 0.5)[:, None], stride[:, None, :])  # (R, M, 3)
        values = grid_sample(
            data[None], grid[None, None], mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (1, C, 1, R, M)
        inside = (k < counts[:, None]).to(data.dtype)  # samples k < n_r count
        return torch.einsum("crm,rm->rc", values[0, :, 0], inside) * step[:, None]


BACKENDS.register("grid_sample", GridSampleBackend)
