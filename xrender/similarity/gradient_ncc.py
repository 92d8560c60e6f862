r"""Gradient normalized cross-correlation: NCC of the images' spatial derivatives.

The images are differentiated with the normalized Sobel operator
(`kornia.filters.spatial_gradient`, which replicates the border: a derivative estimate per
pixel, exact on linear ramps away from the border). Gradient NCC is the mean of the NCC of the
$x$-derivative images and the NCC of the $y$-derivative images,

$$
\mathrm{GradNCC}(x, y) = \tfrac12\big[\mathrm{NCC}(\partial_u x, \partial_u y)
+ \mathrm{NCC}(\partial_v x, \partial_v y)\big] \in [-1, 1],
$$

as in Penney et al., "A comparison of similarity measures for use in 2-D-3D medical image
registration", IEEE TMI 17(4):586–595 (1998), and xreg's gradient NCC. With ``patch_size``, each
NCC is the coverage-weighted mean over square patches of the derivative images
(`xrender.similarity.ncc.patch_ncc`), as xreg's patch gradient NCC. Derivatives ignore
intensity offsets and scale with contrast, so the measure is invariant to $a\,x + b$ with
$a > 0$ and is symmetric.

**Masks.** A derivative pixel reads its 3 × 3 neighbourhood, so its weight is the *minimum* mask
weight over that neighbourhood (the mask eroded by the stencil; neighbours outside the image do
not count): a pixel is used only if every value it reads is. Content under mask 0 therefore does
not change the result. Before differentiating, each channel is shifted by one of its in-mask
values (derivatives ignore the shift), so a constant image has exactly zero derivatives and
gradient NCC 0, with finite gradients; the variance floors of the NCC (see
`xrender.similarity.ncc`) scale with the root mean square of the *intensity* images.

Input conventions (shapes, masks, dtypes) are in `xrender.similarity.base`.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor
from torch.nn.functional import max_pool2d

from xrender.similarity.base import ImageSimilarity, _check_eps, _LossTwin, _prepare_inputs
from xrender.similarity.ncc import _check_patch, _mean_square, _ncc_core

__all__ = ["GradientNCCLoss", "GradientNCCSimilarity", "gradient_ncc"]


def gradient_ncc(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    mask: Float[Tensor, "#B 1 H W"] | None = None,
    *,
    patch_size: int | None = None,
    stride: int | None = None,
    eps: float | None = None,
) -> Float[Tensor, " B"]:
    """Mean of the NCCs of the x- and y-derivative images (global, or patch-wise with ``patch_size``).

    ``moving``, ``fixed`` and ``eps`` are as in `xrender.similarity.ncc.ncc`.

    Args:
        mask: optional pixel weights in ``[0, 1]`` (bool or float), one per item or one for all;
            eroded by the 3 × 3 derivative stencil.
        patch_size: ``None`` for global NCCs of the derivative images, else the side of square
            patches (``2 <= patch_size <= min(H, W)``) as in `xrender.similarity.ncc.patch_ncc`.
        stride: step between patches; default ``patch_size``; only with ``patch_size``.

    Returns:
        Gradient NCC in ``[-1, 1]`` per batch item.

    Raises:
        TypeError: non-tensor input, or a non-integer patch size or stride.
        ValueError: shapes that differ, a bad mask shape, a bad patch size or stride, a stride
            without a patch size, or ``eps <= 0``.

    Examples:
        >>> import torch
        >>> from xrender.similarity import gradient_ncc
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> gradient_ncc(3 * fixed + 5, fixed).round(decimals=6).tolist()  # the derivatives are only scaled
        [1.0]
        >>> gradient_ncc(fixed, fixed, patch_size=8).round(decimals=6).tolist()
        [1.0]
    """
    moving, fixed, weight = _prepare_inputs(moving, fixed, mask, "gradient_ncc")
    stride = _check_options(patch_size, stride, "gradient_ncc", moving.shape)
    eps = _check_eps(eps, "gradient_ncc")
    eroded = -max_pool2d(-weight, 3, stride=1, padding=1)  # 3 × 3 minimum; padding is ignored
    mean_squares = tuple(_mean_square(image, weight).repeat_interleave(2) for image in (moving, fixed))
    both = _ncc_core(
        _derivatives(moving, weight),
        _derivatives(fixed, weight),
        eroded.repeat_interleave(2, dim=0),
        patch_size,
        stride,
        eps,
        mean_squares,
    )
    return both.view(-1, 2).mean(1)


class GradientNCCSimilarity(ImageSimilarity):
    """`gradient_ncc` as a module: gradient NCC in ``[-1, 1]``.

    Args:
        patch_size: ``None`` (global) or the side of square patches, pixels.
        stride: step between patches; default ``patch_size``.
        eps: relative floor of the standard deviations (`xrender.similarity.ncc`); default ``100 ×`` machine epsilon.

    Examples:
        >>> import torch
        >>> from xrender.similarity import GradientNCCSimilarity
        >>> similarity = GradientNCCSimilarity(patch_size=8)
        >>> similarity.bounds
        (-1.0, 1.0)
        >>> fixed = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> similarity(10 - fixed, fixed).round(decimals=6).tolist()  # inverted contrast
        [-1.0, -1.0]
    """

    bounds = (-1.0, 1.0)

    def __init__(self, patch_size: int | None = None, stride: int | None = None, eps: float | None = None) -> None:
        super().__init__()
        self.stride = _check_options(patch_size, stride, "GradientNCCSimilarity")
        self.patch_size = patch_size
        self.eps = _check_eps(eps, "GradientNCCSimilarity")

    def forward(self, moving, fixed, mask=None):
        return gradient_ncc(moving, fixed, mask, patch_size=self.patch_size, stride=self.stride, eps=self.eps)


class GradientNCCLoss(_LossTwin):
    """``1 − gradient_ncc``, in ``[0, 2]``; takes the arguments of `GradientNCCSimilarity`.

    Examples:
        >>> import torch
        >>> from xrender.similarity import GradientNCCLoss
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> GradientNCCLoss()(fixed + 5, fixed).abs().round(decimals=6).tolist()  # 1 − gradient NCC
        [0.0]
    """

    similarity_type = GradientNCCSimilarity


def _derivatives(images: Float[Tensor, "B C H W"], weight: Float[Tensor, "B C H W"]) -> Float[Tensor, "B2 C H W"]:
    """Sobel x- and y-derivatives as a batch of ``2B`` images: item ``2b`` is ``∂u`` of ``b``, ``2b + 1`` its ``∂v``.

    Each channel is first shifted by its value where the weight is largest, so constants give exact zeros.
    """
    from kornia.filters import spatial_gradient  # imported on first use, as in xrender.geometry.rotations

    reference = images.flatten(2).gather(2, weight.flatten(2).argmax(2, keepdim=True)).unsqueeze(3)
    gradients = spatial_gradient(images - reference, mode="sobel", order=1, normalized=True)  # (B, C, 2, H, W)
    return gradients.transpose(1, 2).reshape(-1, *images.shape[1:])


def _check_options(patch_size: object, stride: object, name: str, shape=None) -> int | None:
    """The stride to use: ``None`` for the global form (which takes no stride), else as `_check_patch`."""
    if patch_size is None:
        if stride is not None:
            raise ValueError(f"{name}: stride: expected None without a patch_size, got {stride}")
        return None
    return _check_patch(patch_size, stride, name, shape)
