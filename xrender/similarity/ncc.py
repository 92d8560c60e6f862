r"""Normalized cross-correlation (NCC): global, patch-wise and multiscale.

For intensities $x$ (moving) and $y$ (fixed) over a set of values with weights $w_i \in [0, 1]$
(the mask, shared by the channels), write $\langle z \rangle = \sum_i w_i z_i / \sum_i w_i$ for
the weighted mean, $\bar x = \langle x \rangle$ and $\bar y = \langle y \rangle$. Then

$$
\mathrm{NCC}(x, y) = \frac{\langle (x - \bar x)(y - \bar y) \rangle}
{\sqrt{\langle (x - \bar x)^2 \rangle + f_x}\,\sqrt{\langle (y - \bar y)^2 \rangle + f_y}}
\in [-1, 1].
$$

Higher is better: 1 for $y = a x + b$ with $a > 0$, $-1$ for $a < 0$, 0 for uncorrelated
images. It is symmetric and invariant to positive affine intensity changes of either image (up
to the floors $f$ below).

**Zero variance.** The floors $f_x = (\varepsilon\, \mathrm{rms}_x)^2 + \sqrt{\text{tiny}}$ (and
$f_y$ likewise) keep a constant image or patch defined: its NCC is 0 with finite gradients.
$\mathrm{rms}_x$ is the weighted root mean square of the *whole image* (per batch item), so a
standard deviation below $\varepsilon\,\mathrm{rms}_x$ — rounding noise — counts as none, and
tiny is the smallest normal number of the dtype ($\sqrt{\text{tiny}}$ alone is the floor of an
all-zero image). $\varepsilon$ defaults to 100 times the machine epsilon of the dtype
($1.2\cdot10^{-5}$ in float32, $2.2\cdot10^{-14}$ in float64). The floors move the NCC of an
image with itself below 1 by $\varepsilon^2\,\mathrm{rms}_x^2 / \operatorname{var}(x)$ and break the
invariance to intensity offsets by as much; in a patch, $\operatorname{var}$ is the patch's. Means
are taken relative to one in-mask value of each patch, so a constant patch has exactly zero
variance.

**Flat patches.** NCC has no limit at a constant image: near one, its gradient grows like
$1/\sqrt{f_x}$. A larger $\varepsilon$ (e.g. ``1e-3``) damps the gradients of nearly flat patches
(air in a DRR) at the cost of a small bias on low-contrast ones.

**Patches** are squares of ``patch_size`` pixels taken every ``stride`` pixels (``stride =
patch_size`` by default: non-overlapping) from the top-left corner, with `torch.Tensor.unfold`:
rows and columns left over at the bottom and right borders, when the patch grid does not fit the
image exactly, are dropped. The patch NCCs are averaged with weights equal to each patch's mask
coverage (its mean weight), so unmasked images give the plain mean and a patch outside the mask
does not count. Unfolding holds ``(patch_size / stride)²`` copies of the images: overlapping
patches with a small stride cost memory. Global NCC is the case of one patch covering all of
``(C, H, W)``; every variant here and in `xrender.similarity.gradient_ncc` uses the same weighted
core.

Input conventions (shapes, masks, dtypes) are in `xrender.similarity.base`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_positive
from xrender.similarity.base import ImageSimilarity, _check_eps, _check_int_option, _LossTwin, _prepare_inputs

__all__ = [
    "MultiscaleNCCLoss",
    "MultiscaleNCCSimilarity",
    "NCCLoss",
    "NCCSimilarity",
    "PatchNCCLoss",
    "PatchNCCSimilarity",
    "multiscale_ncc",
    "ncc",
    "patch_ncc",
]

#: The default ``eps`` in units of the dtype's machine epsilon.
_DEFAULT_EPS_ULPS = 100.0


def ncc(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    mask: Float[Tensor, "#B 1 H W"] | None = None,
    *,
    eps: float | None = None,
) -> Float[Tensor, " B"]:
    """Global normalized cross-correlation of each batch item over all its channels and pixels.

    Args:
        moving: images, floating point.
        fixed: images of the same shape.
        mask: optional pixel weights in ``[0, 1]`` (bool or float), one per item or one for all.
        eps: relative floor of the standard deviations (module docstring); default ``100 ×`` machine epsilon.

    Returns:
        NCC in ``[-1, 1]`` per batch item; 0 for a constant image.

    Raises:
        TypeError: non-tensor or non-floating input.
        ValueError: shapes that differ, a mask of the wrong shape, or ``eps <= 0``.

    Examples:
        >>> import torch
        >>> from xrender.similarity import ncc
        >>> fixed = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> ncc(3 * fixed + 1, fixed).round(decimals=6).tolist()  # blind to brightness and contrast
        [1.0, 1.0]
        >>> ncc(-fixed, fixed).round(decimals=6).tolist()
        [-1.0, -1.0]
        >>> other = torch.rand(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> ncc(other, fixed).round(decimals=2).tolist()  # unrelated images: near 0
        [-0.03, -0.08]
    """
    moving, fixed, weight = _prepare_inputs(moving, fixed, mask, "ncc")
    return _ncc_core(moving, fixed, weight, None, None, _check_eps(eps, "ncc"))


def patch_ncc(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    patch_size: int,
    stride: int | None = None,
    mask: Float[Tensor, "#B 1 H W"] | None = None,
    *,
    eps: float | None = None,
) -> Float[Tensor, " B"]:
    """Mean NCC of square patches, weighted by each patch's mask coverage.

    ``moving``, ``fixed``, ``mask`` and ``eps`` are as in `ncc`.

    Args:
        patch_size: side of the square patches, pixels, ``2 <= patch_size <= min(H, W)``.
        stride: step between patches, pixels; default ``patch_size`` (non-overlapping). Rows and
            columns that no patch reaches at the bottom and right are ignored.

    Returns:
        Patch-averaged NCC in ``[-1, 1]`` per batch item.

    Raises:
        TypeError: non-tensor input, or a non-integer patch size or stride.
        ValueError: shapes that differ, a bad mask shape, a patch size below 2 or larger than the
            image, a stride below 1, or ``eps <= 0``.

    Examples:
        >>> import torch
        >>> from xrender.similarity import ncc, patch_ncc
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> moving = fixed.clone()
        >>> moving[..., :8] *= 5.0  # another contrast in the left half
        >>> patch_ncc(moving, fixed, patch_size=8).round(decimals=6).tolist()  # each 8 × 8 patch still matches
        [1.0]
        >>> ncc(moving, fixed).item() < 0.9  # the global NCC does not
        True
    """
    moving, fixed, weight = _prepare_inputs(moving, fixed, mask, "patch_ncc")
    stride = _check_patch(patch_size, stride, "patch_ncc", moving.shape)
    return _ncc_core(moving, fixed, weight, patch_size, stride, _check_eps(eps, "patch_ncc"))


def multiscale_ncc(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    patch_sizes: Sequence[int | None] = (None, 9),
    weights: Sequence[float] = (0.5, 0.5),
    mask: Float[Tensor, "#B 1 H W"] | None = None,
    *,
    eps: float | None = None,
) -> Float[Tensor, " B"]:
    r"""Weighted sum of NCCs at several patch sizes: $\sum_k w_k\, \mathrm{NCC}_{p_k}$.

    ``moving``, ``fixed``, ``mask`` and ``eps`` are as in `ncc`.

    Args:
        patch_sizes: one patch size per scale (non-overlapping patches); ``None`` is the global NCC.
        weights: one positive weight per scale, normalised to sum to 1 (so the result stays in
            ``[-1, 1]``).

    Returns:
        Multiscale NCC in ``[-1, 1]`` per batch item.

    Raises:
        TypeError: non-tensor input or a non-integer patch size.
        ValueError: shapes that differ, a bad mask shape, bad patch sizes, weights that are not
            positive or not one per patch size, or ``eps <= 0``.

    Examples:
        >>> import torch
        >>> from xrender.similarity import multiscale_ncc, ncc
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> moving = fixed.clone()
        >>> moving[..., :8] *= 5.0
        >>> both = multiscale_ncc(moving, fixed, patch_sizes=(None, 8), weights=(1.0, 1.0))  # global and 8 × 8 patches
        >>> torch.allclose(both, (ncc(moving, fixed) + 1.0) / 2)  # weights normalised to sum to 1
        True
    """
    moving, fixed, weight = _prepare_inputs(moving, fixed, mask, "multiscale_ncc")
    scales = _check_scales(patch_sizes, weights, "multiscale_ncc", moving.shape)
    eps = _check_eps(eps, "multiscale_ncc")
    return sum(w * _ncc_core(moving, fixed, weight, p, p, eps) for p, w in scales)


class NCCSimilarity(ImageSimilarity):
    """`ncc` as a module: global NCC in ``[-1, 1]``.

    Args:
        eps: relative floor of the standard deviations (module docstring); default ``100 ×`` machine epsilon.

    Examples:
        >>> import torch
        >>> from xrender.similarity import NCCSimilarity, ncc
        >>> similarity = NCCSimilarity()
        >>> similarity.bounds
        (-1.0, 1.0)
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> noise = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> moving = fixed + 0.1 * noise
        >>> torch.equal(similarity(moving, fixed), ncc(moving, fixed))
        True
        >>> mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
        >>> mask[..., 4:12, 4:12] = True  # compare the central 8 × 8 pixels only
        >>> similarity(moving, fixed, mask).shape
        torch.Size([1])
    """

    bounds = (-1.0, 1.0)

    def __init__(self, eps: float | None = None) -> None:
        super().__init__()
        self.eps = _check_eps(eps, "NCCSimilarity")

    def forward(self, moving, fixed, mask=None):
        return ncc(moving, fixed, mask, eps=self.eps)


class PatchNCCSimilarity(ImageSimilarity):
    """`patch_ncc` as a module: mean patch NCC in ``[-1, 1]``.

    Args:
        patch_size: side of the square patches, pixels (``>= 2``).
        stride: step between patches; default ``patch_size`` (non-overlapping).
        eps: relative floor of the standard deviations (module docstring); default ``100 ×`` machine epsilon.

    Examples:
        >>> import torch
        >>> from xrender.similarity import PatchNCCSimilarity
        >>> similarity = PatchNCCSimilarity(patch_size=8, stride=4)  # overlapping patches
        >>> similarity
        PatchNCCSimilarity(patch_size=8, stride=4, eps=None)
        >>> fixed = torch.rand(3, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> similarity(2 * fixed, fixed).round(decimals=6).tolist()
        [1.0, 1.0, 1.0]
    """

    bounds = (-1.0, 1.0)

    def __init__(self, patch_size: int, stride: int | None = None, eps: float | None = None) -> None:
        super().__init__()
        self.stride = _check_patch(patch_size, stride, "PatchNCCSimilarity")
        self.patch_size = patch_size
        self.eps = _check_eps(eps, "PatchNCCSimilarity")

    def forward(self, moving, fixed, mask=None):
        return patch_ncc(moving, fixed, self.patch_size, self.stride, mask, eps=self.eps)


class MultiscaleNCCSimilarity(ImageSimilarity):
    """`multiscale_ncc` as a module: weighted NCCs at several patch sizes, in ``[-1, 1]``.

    Args:
        patch_sizes: one patch size per scale; ``None`` is the global NCC.
        weights: positive weights, one per scale, normalised to sum to 1.
        eps: relative floor of the standard deviations (module docstring); default ``100 ×`` machine epsilon.

    Examples:
        >>> import torch
        >>> from xrender.similarity import MultiscaleNCCSimilarity
        >>> similarity = MultiscaleNCCSimilarity(patch_sizes=(None, 8, 4), weights=(2.0, 1.0, 1.0))
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> similarity(fixed, fixed).round(decimals=6).tolist(), similarity(-fixed, fixed).round(decimals=6).tolist()
        ([1.0], [-1.0])
    """

    bounds = (-1.0, 1.0)

    def __init__(
        self,
        patch_sizes: Sequence[int | None] = (None, 9),
        weights: Sequence[float] = (0.5, 0.5),
        eps: float | None = None,
    ) -> None:
        super().__init__()
        _check_scales(patch_sizes, weights, "MultiscaleNCCSimilarity")
        self.patch_sizes, self.weights = tuple(patch_sizes), tuple(float(w) for w in weights)
        self.eps = _check_eps(eps, "MultiscaleNCCSimilarity")

    def forward(self, moving, fixed, mask=None):
        return multiscale_ncc(moving, fixed, self.patch_sizes, self.weights, mask, eps=self.eps)


class NCCLoss(_LossTwin):
    """``1 − ncc``, in ``[0, 2]``; takes the arguments of `NCCSimilarity`.

    Examples:
        >>> import torch
        >>> from xrender.similarity import NCCLoss
        >>> loss = NCCLoss()
        >>> loss.bounds
        (0.0, 2.0)
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> loss(2 * fixed, fixed).abs().round(decimals=6).tolist(), loss(-fixed, fixed).round(decimals=6).tolist()
        ([0.0], [2.0])
    """

    similarity_type = NCCSimilarity


class PatchNCCLoss(_LossTwin):
    """``1 − patch_ncc``, in ``[0, 2]``; takes the arguments of `PatchNCCSimilarity`.

    Examples:
        >>> import torch
        >>> from xrender.similarity import PatchNCCLoss
        >>> loss = PatchNCCLoss(patch_size=8)
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> loss(-fixed, fixed).round(decimals=6).tolist()
        [2.0]
    """

    similarity_type = PatchNCCSimilarity


class MultiscaleNCCLoss(_LossTwin):
    """``1 − multiscale_ncc``, in ``[0, 2]``; takes the arguments of `MultiscaleNCCSimilarity`.

    Examples:
        >>> import torch
        >>> from xrender.similarity import MultiscaleNCCLoss
        >>> loss = MultiscaleNCCLoss(patch_sizes=(None, 8), weights=(0.5, 0.5))
        >>> fixed = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> _ = fixed.requires_grad_()
        >>> moving = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        >>> value = loss(moving, fixed)
        >>> 0.0 < value.item() < 2.0
        True
        >>> value.sum().backward()  # a loss to minimise, differentiable in both images
        >>> fixed.grad.shape
        torch.Size([1, 1, 16, 16])
    """

    similarity_type = MultiscaleNCCSimilarity


# ------------------------------------------------------------------------------------- the core
def _ncc_core(
    moving: Float[Tensor, "B C H W"],
    fixed: Float[Tensor, "B C H W"],
    weight: Float[Tensor, "B C H W"],
    patch_size: int | None,
    stride: int | None,
    eps: float | None,
    mean_squares: tuple[Tensor, Tensor] | None = None,
) -> Float[Tensor, " B"]:
    """Coverage-weighted mean of the weighted NCC of every patch (``patch_size=None``: one patch, the image).

    ``mean_squares`` ``(B,)`` scale the variance floors of ``moving`` and ``fixed`` (default: their
    own weighted mean squares; gradient NCC passes those of the intensity images).
    """
    eps = _DEFAULT_EPS_ULPS * torch.finfo(moving.dtype).eps if eps is None else eps
    absolute = torch.finfo(moving.dtype).tiny ** 0.5
    w = _patches(weight, patch_size, stride)
    total = w.sum(1)  # (B, L)
    safe_total = torch.where(total > 0, total, torch.ones_like(total))

    def centred(x: Tensor) -> Tensor:
        reference = x.gather(1, w.argmax(1, keepdim=True))  # an in-mask value of each patch
        shifted = x - reference
        return shifted - (w * shifted).sum(1, keepdim=True) / safe_total.unsqueeze(1)

    dx = centred(_patches(moving, patch_size, stride))
    dy = centred(_patches(fixed, patch_size, stride))
    if mean_squares is None:
        mean_squares = (_mean_square(moving, weight), _mean_square(fixed, weight))
    floors = [eps**2 * scale.unsqueeze(1) + absolute for scale in mean_squares]
    var_x = (w * dx.square()).sum(1) / safe_total + floors[0]
    var_y = (w * dy.square()).sum(1) / safe_total + floors[1]
    per_patch = (w * dx * dy).sum(1) / safe_total / var_x.sqrt() / var_y.sqrt()
    coverage_sum = total.sum(1)
    safe_coverage_sum = torch.where(coverage_sum > 0, coverage_sum, torch.ones_like(coverage_sum))
    return (total * per_patch).sum(1) / safe_coverage_sum


def _patches(t: Float[Tensor, "B C H W"], patch_size: int | None, stride: int | None) -> Float[Tensor, "B N L"]:
    """The values of each patch as columns: ``(B, C·p·p, L)``; ``patch_size=None``: one column, the image."""
    if patch_size is None:
        return t.reshape(t.shape[0], -1, 1)
    B, C = t.shape[:2]
    windows = t.unfold(2, patch_size, stride).unfold(3, patch_size, stride)  # (B, C, nH, nW, p, p)
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(B, C * patch_size**2, -1)


def _mean_square(image: Float[Tensor, "B C H W"], weight: Float[Tensor, "B C H W"]) -> Float[Tensor, " B"]:
    """Weighted mean of ``image²`` per batch item (0 where all weights are 0)."""
    total = weight.sum((1, 2, 3))
    return (weight * image.square()).sum((1, 2, 3)) / torch.where(total > 0, total, torch.ones_like(total))


def _check_patch(patch_size: object, stride: object, name: str, shape: torch.Size | None = None) -> int:
    """Validate a patch size (and, given the image shape, that it fits); return the stride (default: the size)."""
    patch_size = _check_int_option(patch_size, f"{name}: patch_size", 2)
    stride = patch_size if stride is None else _check_int_option(stride, f"{name}: stride", 1)
    if shape is not None and patch_size > min(shape[-2:]):
        raise ValueError(
            f"{name}: patch_size: expected at most the image size {min(shape[-2:])} "
            f"(images of shape {tuple(shape)}), got {patch_size}"
        )
    return stride


def _check_scales(
    patch_sizes: Sequence[int | None], weights: Sequence[float], name: str, shape: torch.Size | None = None
) -> list[tuple[int | None, float]]:
    """Validate multiscale options; return ``(patch size, normalised weight)`` pairs."""
    patch_sizes, weights = list(patch_sizes), [float(w) for w in weights]
    if not patch_sizes or len(patch_sizes) != len(weights):
        raise ValueError(
            f"{name}: expected one weight per patch size and at least one scale, "
            f"got {len(patch_sizes)} patch size(s) and {len(weights)} weight(s)"
        )
    check_positive(weights, f"{name}: weights")
    for size in patch_sizes:
        if size is not None:
            _check_patch(size, None, name, shape)
    total = sum(weights)
    return [(size, w / total) for size, w in zip(patch_sizes, weights)]
