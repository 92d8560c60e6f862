r"""What every image similarity shares: the input contract, the module base class and the loss wrapper.

Conventions
-----------
* A **similarity** (``...Similarity``, or the plain function such as `xrender.similarity.ncc.ncc`)
  is *higher-is-better* and lies in a documented range, its `ImageSimilarity.bounds`.
* A **loss** (``...Loss``, built by `SimilarityLoss`) is its minimisable twin: the similarity's
  upper bound minus the similarity, so it is $\ge 0$ and $0$ where the similarity attains its
  maximum.
* Inputs ``moving`` and ``fixed`` are batches of images of one shape ``(B, C, H, W)``; the
  result has shape ``(B,)``, one value per batch item computed over all its channels and pixels.
  Floating inputs of different dtypes are promoted to the wider one; the result has that dtype
  and the inputs' device, and is differentiable with respect to both images.
* An optional ``mask`` of shape ``(B, 1, H, W)`` or ``(1, 1, H, W)`` (one mask for the whole
  batch), bool or floating, holds per-pixel **weights in** $[0, 1]$ shared by all channels
  (values are not checked, which would need a device sync). A pixel of weight 0 is ignored: what
  it holds does not change the result (it must be finite). A batch item whose mask is all zero
  gets the value of unrelated images (0; 1 for normalized mutual information).
* Degenerate inputs are defined: a constant image gives that same value, with finite gradients.
* Nothing on the computation path reads a value back to the host (no scalar extraction), so the
  functions run asynchronously on a GPU; only shapes and options are validated.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_positive, check_tensor

__all__ = ["ImageSimilarity", "SimilarityLoss"]


class ImageSimilarity(nn.Module):
    """Base class of the similarity modules: ``similarity(moving, fixed, mask=None)`` → ``(B,)``.

    Subclasses implement `forward` (usually a call of the matching function with the options
    stored at construction) and set `bounds`.

    Examples:
        >>> import torch
        >>> from xrender.similarity import ImageSimilarity, SimilarityLoss
        >>> class NegativeMSE(ImageSimilarity):
        ...     bounds = (-float("inf"), 0.0)
        ...     def forward(self, moving, fixed, mask=None):
        ...         return -((moving - fixed) ** 2).mean(dim=(1, 2, 3))
        >>> fixed = torch.zeros(2, 1, 4, 4)
        >>> NegativeMSE()(fixed + 0.5, fixed).tolist()  # (B,), higher is better
        [-0.25, -0.25]
        >>> SimilarityLoss(NegativeMSE())(fixed + 0.5, fixed).tolist()  # its twin to minimise: 0 − similarity
        [0.25, 0.25]
    """

    bounds: ClassVar[tuple[float, float]] = (-float("inf"), float("inf"))
    """The documented range ``(lowest, highest)`` of the similarity. A class-level value; a
    subclass whose range depends on an option (the number of histogram bins of mutual
    information) sets it per instance."""

    def forward(
        self,
        moving: Float[Tensor, "B C H W"],
        fixed: Float[Tensor, "B C H W"],
        mask: Float[Tensor, "#B 1 H W"] | None = None,
    ) -> Float[Tensor, " B"]:
        """The similarity of each moving image to its fixed image (see the module conventions)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def extra_repr(self) -> str:
        """The constructor's options as stored on the module, e.g. ``patch_size=9, stride=9, eps=None``."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in names if hasattr(self, name))


class SimilarityLoss(nn.Module):
    r"""A similarity as a loss to minimise: ``loss = similarity.bounds[1] − similarity(...)``.

    The loss is $\ge 0$ and $0$ where the similarity reaches its upper bound (for the NCC family,
    at a perfect positive linear relation). The named twins (`xrender.similarity.ncc.NCCLoss`,
    ...) are this wrapper around the similarity built from the twin's arguments.

    Args:
        similarity: the similarity module; its upper bound must be finite.

    Raises:
        TypeError: ``similarity`` is not an `ImageSimilarity`.
        ValueError: its upper bound is not finite.

    Examples:
        >>> import torch
        >>> from xrender.similarity import NCCSimilarity, SimilarityLoss
        >>> loss = SimilarityLoss(NCCSimilarity())  # what NCCLoss() builds
        >>> loss.bounds
        (0.0, 2.0)
        >>> fixed = torch.rand(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> loss(-fixed, fixed).round(decimals=6).tolist()
        [2.0]
    """

    def __init__(self, similarity: ImageSimilarity) -> None:
        super().__init__()
        if not isinstance(similarity, ImageSimilarity):
            raise TypeError(f"{type(self).__name__}: expected an ImageSimilarity, got {type(similarity).__name__}")
        if not similarity.bounds[1] < float("inf"):
            raise ValueError(
                f"{type(self).__name__}: expected a similarity with a finite upper bound, "
                f"got {type(similarity).__name__} with bounds {similarity.bounds}"
            )
        self.similarity = similarity

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of the loss: ``(0, upper − lower)`` of the similarity's bounds."""
        lower, upper = self.similarity.bounds
        return (0.0, upper - lower)

    def forward(self, moving: Tensor, fixed: Tensor, mask: Tensor | None = None) -> Float[Tensor, " B"]:
        """``upper bound − similarity`` per batch item, for the inputs of `ImageSimilarity.forward`."""
        return self.similarity.bounds[1] - self.similarity(moving, fixed, mask)


class _LossTwin(SimilarityLoss):
    """A `SimilarityLoss` whose constructor takes the arguments of `similarity_type` (one line per named twin)."""

    #: The similarity class the twin builds from its constructor arguments.
    similarity_type: ClassVar[type[ImageSimilarity]]

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(self.similarity_type(*args, **options))


# ----------------------------------------------------------------------------- shared validation
def _prepare_inputs(
    moving: Tensor, fixed: Tensor, mask: Tensor | None, name: str
) -> tuple[Float[Tensor, "B C H W"], Float[Tensor, "B C H W"], Float[Tensor, "B C H W"]]:
    """Validate a similarity's inputs; return both images in one dtype and the weights expanded to ``(B, C, H, W)``.

    Args:
        moving: images ``(B, C, H, W)``, floating point.
        fixed: images of the same shape.
        mask: ``None`` (all weights 1) or weights ``(B, 1, H, W)`` / ``(1, 1, H, W)``.
        name: the calling function, for error messages.

    Raises:
        TypeError: a non-tensor, or images that are not floating point.
        ValueError: images that are not 4-D or differ in shape, or a mask of the wrong shape.
    """
    check_tensor(moving, f"{name}: moving")
    check_tensor(fixed, f"{name}: fixed")
    for label, image in (("moving", moving), ("fixed", fixed)):
        if not image.is_floating_point():
            raise TypeError(f"{name}: {label}: expected a floating-point tensor, got dtype {image.dtype}")
    if moving.dim() != 4 or moving.shape != fixed.shape:
        raise ValueError(
            f"{name}: expected moving and fixed of one shape (B, C, H, W), "
            f"got moving {tuple(moving.shape)} and fixed {tuple(fixed.shape)}"
        )
    dtype = torch.promote_types(moving.dtype, fixed.dtype)
    moving, fixed = moving.to(dtype), fixed.to(dtype)
    if mask is None:
        return moving, fixed, torch.ones_like(moving)
    check_tensor(mask, f"{name}: mask")
    B, C, H, W = moving.shape
    if mask.dim() != 4 or mask.shape[0] not in (1, B) or tuple(mask.shape[1:]) != (1, H, W):
        raise ValueError(
            f"{name}: mask: expected shape ({B}, 1, {H}, {W}) or (1, 1, {H}, {W}) for images of shape "
            f"{tuple(moving.shape)}, got {tuple(mask.shape)}"
        )
    return moving, fixed, mask.to(dtype).expand(B, C, H, W)


def _check_int_option(value: object, name: str, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) ``>= minimum``; else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def _check_eps(eps: float | None, name: str) -> float | None:
    """Return ``eps`` if it is ``None`` or a finite positive number; else raise naming ``name``."""
    if eps is not None:
        check_positive(eps, f"{name}: eps")
    return eps
