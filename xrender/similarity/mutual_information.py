r"""Mutual information (MI) from a Parzen-window joint histogram, with masks and normalized MI.

**Estimate.** Each image is min–max normalised per batch item into $[0, 1]$ (over the pixels of
positive mask weight, all channels together; a constant image maps to 0). The values are soft-binned
with kornia's Gaussian Parzen kernel (`kornia.enhance.histogram.marginal_pdf`) at ``bins`` centres
$c_k = k / (\text{bins} - 1)$ and standard deviation $\sigma = \text{bandwidth} / (\text{bins} - 1)$
(``bandwidth`` is in bin widths), and each value's kernel row is normalised to sum to 1, so every
pixel carries the same mass:

$$
K_k(u_n) = \frac{e^{-(u_n - c_k)^2 / 2\sigma^2}}{\sum_j e^{-(u_n - c_j)^2 / 2\sigma^2}},
\qquad
p_{kl} = \frac{\sum_n w_n\, K_k(u_n)\, K_l(v_n)}{\sum_n w_n}.
$$

This is kornia's `kornia.enhance.histogram.joint_pdf` with the mask weights $w_n$ applied to the
kernel values (kornia's has no weights); pixels of weight 0 do not count. The marginals are the
sums of the joint, $p_k = \sum_l p_{kl}$, so the estimate is consistent and
$\mathrm{MI} = H(X) + H(Y) - H(X, Y) \ge 0$ with $H(P) = -\sum P \log P$ in nats.

**Ranges.** $\mathrm{MI} \in [0, \log(\text{bins})]$; normalized MI (Studholme et al., Pattern
Recognition 32(1):71–86, 1999) $\mathrm{NMI} = (H(X) + H(Y)) / H(X, Y) = 1 + \mathrm{MI} / H(X, Y)
\in [1, 2]$. MI of an image with itself is its entropy $H(X)$ for a narrow kernel; a wider kernel
smooths the joint off its diagonal, so self-MI is below $H(X)$ (and NMI below 2), but still the
maximum over perturbed images. Both are symmetric and, through the normalisation, invariant to
$a\,x + b$ with $a > 0$ (and, for a narrow kernel, close to invariant to any increasing map).
Independent images give about 0 (the estimate's bias grows with ``bins²`` / pixels).

A constant image has MI 0 (NMI 1) with finite gradients; so does a batch item whose mask is all
zero. Memory: two ``(B, C·H·W, bins)`` kernel tensors.

Input conventions (shapes, masks, dtypes) are in `xrender.similarity.base`.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_positive
from xrender.similarity.base import ImageSimilarity, _check_int_option, _LossTwin, _prepare_inputs

__all__ = ["MIN_BANDWIDTH", "MutualInformationLoss", "MutualInformationSimilarity", "mutual_information"]

MIN_BANDWIDTH = 0.1
"""The narrowest kernel accepted, in bin widths: narrower Gaussians underflow (float32) for values
between two bin centres, which would then carry no mass."""


def mutual_information(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    mask: Float[Tensor, "#B 1 H W"] | None = None,
    *,
    bins: int = 32,
    bandwidth: float = 0.5,
    normalized: bool = False,
) -> Float[Tensor, " B"]:
    """Mutual information (nats) or normalized MI of each moving image and its fixed image.

    Args:
        moving: images, floating point.
        fixed: images of the same shape.
        mask: optional pixel weights in ``[0, 1]`` (bool or float), one per item or one for all.
        bins: histogram bins per image (``>= 2``).
        bandwidth: standard deviation of the Gaussian Parzen kernel in bin widths
            (``>= MIN_BANDWIDTH``); 0.5 by default.
        normalized: return NMI ``(H(X) + H(Y)) / H(X, Y)`` in ``[1, 2]`` instead of MI in
            ``[0, log(bins)]``.

    Returns:
        MI or NMI per batch item.

    Raises:
        TypeError: non-tensor or non-floating input, or a non-integer ``bins``.
        ValueError: shapes that differ, a bad mask shape, ``bins < 2`` or a bandwidth below
            `MIN_BANDWIDTH`.

    Examples:
        >>> import math
        >>> import torch
        >>> from xrender.similarity import mutual_information
        >>> fixed = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> other = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> same, unrelated = mutual_information(fixed, fixed, bins=16), mutual_information(other, fixed, bins=16)
        >>> bool(unrelated < same < math.log(16))  # nats, in [0, log(bins)]
        True
        >>> nmi = mutual_information((1 - fixed) ** 2, fixed, bins=16, normalized=True)  # a one-to-one intensity map
        >>> bool(1.3 < nmi < 2.0), round(mutual_information(other, fixed, bins=16, normalized=True).item(), 2)
        (True, 1.01)
    """
    moving, fixed, weight = _prepare_inputs(moving, fixed, mask, "mutual_information")
    _check_options(bins, bandwidth, "mutual_information")
    B = moving.shape[0]
    w = weight.reshape(B, -1)
    total = w.sum(1, keepdim=True)
    w = w / torch.where(total > 0, total, torch.ones_like(total))
    centers = torch.linspace(0.0, 1.0, bins, dtype=moving.dtype, device=moving.device)
    sigma = torch.full((), bandwidth / (bins - 1), dtype=moving.dtype, device=moving.device)  # no host copy
    kernel_x = _soft_bins(moving.reshape(B, -1), w, centers, sigma)
    kernel_y = _soft_bins(fixed.reshape(B, -1), w, centers, sigma)
    joint = (kernel_x * w.unsqueeze(2)).transpose(1, 2) @ kernel_y  # (B, bins, bins), sums to 1
    h_x, h_y, h_xy = _entropy(joint.sum(2)), _entropy(joint.sum(1)), _entropy(joint.flatten(1))
    mi = h_x + h_y - h_xy
    if normalized:
        return 1.0 + mi / h_xy.clamp_min(torch.finfo(mi.dtype).eps)
    return mi


class MutualInformationSimilarity(ImageSimilarity):
    """`mutual_information` as a module: MI in ``[0, log(bins)]`` or NMI in ``[1, 2]``.

    `bounds` is set per instance, since the MI range depends on ``bins``.

    Args:
        bins: histogram bins per image (``>= 2``).
        bandwidth: Parzen kernel standard deviation in bin widths (``>= MIN_BANDWIDTH``).
        normalized: compute normalized MI.

    Examples:
        >>> import torch
        >>> from xrender.similarity import MutualInformationSimilarity
        >>> similarity = MutualInformationSimilarity(bins=16)
        >>> [round(bound, 4) for bound in similarity.bounds]  # (0, log(bins)) nats
        [0.0, 2.7726]
        >>> MutualInformationSimilarity(normalized=True).bounds
        (1.0, 2.0)
        >>> fixed = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(similarity(1 - fixed, fixed), similarity(fixed, fixed))  # blind to inverted contrast
        True
    """

    def __init__(self, bins: int = 32, bandwidth: float = 0.5, normalized: bool = False) -> None:
        super().__init__()
        _check_options(bins, bandwidth, "MutualInformationSimilarity")
        self.bins, self.bandwidth, self.normalized = bins, float(bandwidth), bool(normalized)
        self.bounds = (1.0, 2.0) if normalized else (0.0, math.log(bins))

    def forward(self, moving, fixed, mask=None):
        return mutual_information(
            moving, fixed, mask, bins=self.bins, bandwidth=self.bandwidth, normalized=self.normalized
        )


class MutualInformationLoss(_LossTwin):
    """``log(bins) − MI`` (or ``2 − NMI``); takes the arguments of `MutualInformationSimilarity`.

    The loss is ``>= 0`` but reaches 0 only for images whose joint histogram is that of a uniform
    image with itself; it is smallest at the best alignment, not 0 there.

    Examples:
        >>> import torch
        >>> from xrender.similarity import MutualInformationLoss
        >>> loss = MutualInformationLoss(bins=16, normalized=True)  # 2 − NMI
        >>> fixed = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> other = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> bool(loss(fixed, fixed) < loss(other, fixed))  # smallest at the best alignment
        True
    """

    similarity_type = MutualInformationSimilarity


def _soft_bins(
    values: Float[Tensor, "B N"], weight: Float[Tensor, "B N"], centers: Float[Tensor, " K"], sigma: Tensor
) -> Float[Tensor, "B N K"]:
    """Min–max normalise ``values`` over ``weight > 0`` and return each value's kernel row, summing to 1."""
    from kornia.enhance.histogram import marginal_pdf  # imported on first use, as in xrender.geometry.rotations

    valid = weight > 0
    low = torch.where(valid, values, float("inf")).amin(1, keepdim=True)
    high = torch.where(valid, values, -float("inf")).amax(1, keepdim=True)
    low = torch.where(low.isfinite(), low, torch.zeros_like(low))  # an item with no valid pixel
    span = torch.where(high > low, high - low, torch.ones_like(low))
    unit = ((values - low) / span).clamp(0.0, 1.0)
    _, kernel = marginal_pdf(unit.unsqueeze(2), centers, sigma)
    return kernel / kernel.sum(2, keepdim=True).clamp_min(torch.finfo(kernel.dtype).tiny)


def _entropy(p: Float[Tensor, "B K"]) -> Float[Tensor, " B"]:
    """Shannon entropy in nats of each row; empty bins contribute 0 (and a finite gradient)."""
    return -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(1)


def _check_options(bins: object, bandwidth: object, name: str) -> None:
    _check_int_option(bins, f"{name}: bins", 2)
    check_positive(bandwidth, f"{name}: bandwidth")
    if bandwidth < MIN_BANDWIDTH:
        raise ValueError(f"{name}: bandwidth: expected at least {MIN_BANDWIDTH} bin widths, got {bandwidth}")
