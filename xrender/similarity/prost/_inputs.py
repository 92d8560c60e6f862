"""Input checks shared by the ProST heads (image pairs and image sizes), and a broadcast-aware call."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from torch import Tensor

from xrender._checks import check_shape

__all__ = ["broadcast_once", "check_image_pair", "check_image_size"]


def broadcast_once(function: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """``function(images)``, computed once when the batch repeats one image (a stride-0 view), then broadcast.

    Registration scores many poses against one X-ray, passed as ``fixed.expand(B, …)``; its
    standardisation and encoding need not run ``B`` times. Reads only the strides (no host sync).
    """
    if images.shape[0] > 1 and images.stride(0) == 0:
        one = function(images[:1])
        return one.expand(images.shape[0], *one.shape[1:])
    return function(images)


def check_image_size(image_size: Sequence[int], divisors: Sequence[int], name: str = "image_size") -> tuple[int, int]:
    """Return ``image_size`` as ``(H, W)`` after checking both are positive and divisible by every divisor.

    Raises:
        ValueError: not two positive integers, or a side not divisible by one of ``divisors``.
    """
    try:
        size = tuple(operator.index(s) for s in image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name}: expected two positive integers (H, W), got {image_size!r}")
    for d in divisors:
        if size[0] % d or size[1] % d:
            raise ValueError(f"{name}: expected H and W divisible by {d}, got {size}")
    return size[0], size[1]


def check_image_pair(moving: Tensor, fixed: Tensor, moving_channels: int, fixed_channels: int) -> tuple[int, int]:
    """Check a (moving, fixed) pair of image batches and return their ``(H, W)``.

    Args:
        moving: ``(B, moving_channels, H, W)``.
        fixed: ``(B, fixed_channels, H, W)``, same ``B``, ``H``, ``W``, dtype and device as ``moving``.
        moving_channels: expected channels of ``moving``.
        fixed_channels: expected channels of ``fixed``.

    Raises:
        TypeError: not tensors.
        ValueError: wrong rank or channels, or the two disagree in batch size, image size, dtype or device.
    """
    check_shape(moving, f"B {moving_channels} H W", "moving")
    check_shape(fixed, f"B {fixed_channels} H W", "fixed")
    if moving.shape[0] != fixed.shape[0]:
        raise ValueError(f"moving and fixed: expected the same batch size, got {moving.shape[0]} and {fixed.shape[0]}")
    if moving.shape[-2:] != fixed.shape[-2:]:
        raise ValueError(
            f"moving and fixed: expected the same image size, got {tuple(moving.shape[-2:])} and "
            f"{tuple(fixed.shape[-2:])}"
        )
    if moving.dtype != fixed.dtype or moving.device != fixed.device:
        raise ValueError(
            f"moving and fixed: expected the same dtype and device, got {moving.dtype} on {moving.device} and "
            f"{fixed.dtype} on {fixed.device}"
        )
    return moving.shape[-2], moving.shape[-1]
