r"""X-ray image operations: crop, flip, −log, binning and normalisation, with the geometry kept in step.

`preprocess_xray` turns an X-ray as read (`xrender.io.read_xray`, `xrender.io.read_dicom_xray`)
into the fixed image of a registration: it crops, flips, converts intensities to line integrals,
bins and normalises it, carrying a `ConeBeam` geometry along so that the image and its detector
stay in step. `fit_to_geometry` bins an image and its geometry to a working resolution
(`working_factor`), and `bin_image` is the block average both use.

**What the pixel values mean.** Images come in *display orientation*: a higher value is shown
brighter. For a raw *intensity* image (air bright, bone dark — e.g. fluoroscopy) the values are
the detected intensities $I$; turn them into line integrals (bone bright, like a DRR) with
``negative_log=True``. A radiograph already shown with bone bright is attenuation-like as it
is: leave ``negative_log`` off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn.functional import avg_pool2d

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam

__all__ = [
    "FLIPS",
    "DetectorSizeError",
    "INTENSITY_FLOOR",
    "NORMALIZATIONS",
    "XRayPreprocessing",
    "bin_image",
    "fit_to_geometry",
    "preprocess_xray",
    "working_factor",
]

#: Intensities are clamped to ``INTENSITY_FLOOR · I0`` before the logarithm of
#: ``negative_log``, so a zero or negative pixel gives at most ``−log(1e−6) ≈ 13.8``.
INTENSITY_FLOOR = 1e-6


def _flip(columns: bool, rows: bool) -> Callable[[Tensor, ConeBeam | None], tuple[Tensor, ConeBeam | None]]:
    """A flip of the columns (``u → W−1−u``) and/or rows (``v → H−1−v``) of an image and its geometry."""
    dims = tuple(d for d, flipped in ((-1, columns), (-2, rows)) if flipped)

    def apply(image: Tensor, geometry: ConeBeam | None) -> tuple[Tensor, ConeBeam | None]:
        if not dims:
            return image, geometry
        if geometry is not None:
            du, dv = geometry.principal_offset
            geometry = replace(geometry, principal_offset=(-du if columns else du, -dv if rows else dv))
        return image.flip(dims), geometry

    return apply


#: Flip name → ``(image (H, W), geometry or None) -> (flipped image, geometry)``. The principal
#: point is mirrored with the pixels (its offset from the centre changes sign), so a flipped
#: image keeps matching its geometry; a centred principal point stays where it is.
FLIPS: Mapping[str, Callable[[Tensor, ConeBeam | None], tuple[Tensor, ConeBeam | None]]] = MappingProxyType(
    {
        "none": _flip(columns=False, rows=False),
        "horizontal": _flip(columns=True, rows=False),
        "vertical": _flip(columns=False, rows=True),
        "rot180": _flip(columns=True, rows=True),
    }
)


def _constant(image: Tensor, name: str) -> ValueError:
    value = float(image.flatten()[0])
    return ValueError(f"normalize={name!r}: the image is constant ({value:g}) and has no contrast to normalise")


def _minmax(image: Tensor) -> Tensor:
    low, high = image.min(), image.max()
    if not bool(high > low):
        raise _constant(image, "minmax")
    return (image - low) / (high - low)


def _zscore(image: Tensor) -> Tensor:
    std = image.std(correction=0)
    if not bool(std > 0):
        raise _constant(image, "zscore")
    return (image - image.mean()) / std


#: Normalisation name → function of the image: ``"none"`` keeps it, ``"minmax"`` maps it to
#: ``[0, 1]`` by ``(x − min) / (max − min)``, ``"zscore"`` to ``(x − mean) / std`` (population
#: standard deviation). Both refuse a constant image.
NORMALIZATIONS: Mapping[str, Callable[[Tensor], Tensor]] = MappingProxyType(
    {"none": lambda image: image, "minmax": _minmax, "zscore": _zscore}
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class XRayPreprocessing:
    r"""How `preprocess_xray` turns a read X-ray into the fixed image of a registration.

    The steps run in this order: **crop → flip → −log → binning → normalise**.

    Attributes:
        crop: ``(top, left, bottom, right)`` pixels removed from each side (collimator edges,
            burnt-in text).
        flip: one of `FLIPS`: ``"none"``, ``"horizontal"`` (mirror the columns), ``"vertical"``
            (mirror the rows) or ``"rot180"``; use it to bring the image to xrender's view
            *from the source*.
        negative_log: convert intensities $I$ to line integrals
            $-\log(\max(I, \epsilon I_0) / I_0)$ with $\epsilon$ = `INTENSITY_FLOOR`; pixels
            brighter than $I_0$ become negative.
        i0: the unattenuated intensity $I_0$ (> 0); ``None``: the maximum of the cropped
            image. Only with ``negative_log``.
        binning: average ``binning × binning`` blocks of pixels (a remainder of rows and columns
            at the bottom and right is dropped, as `ConeBeam.downsample` does).
        normalize: one of `NORMALIZATIONS`: ``"none"``, ``"minmax"`` or ``"zscore"``.

    Raises:
        ValueError: a field out of its range or of the wrong type; the message names it.
    """

    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    flip: str = "none"
    negative_log: bool = False
    i0: float | None = None
    binning: int = 1
    normalize: str = "none"

    def __post_init__(self) -> None:
        crop = tuple(self.crop) if isinstance(self.crop, (tuple, list)) else self.crop
        if not isinstance(crop, tuple) or len(crop) != 4 or not all(_is_int(m) and m >= 0 for m in crop):
            raise ValueError(
                f"XRayPreprocessing.crop: expected four non-negative ints (top, left, bottom, right), got {self.crop!r}"
            )
        object.__setattr__(self, "crop", crop)
        if self.flip not in FLIPS:
            raise ValueError(f"XRayPreprocessing.flip: expected one of {', '.join(FLIPS)}, got {self.flip!r}")
        if not isinstance(self.negative_log, bool):
            raise ValueError(f"XRayPreprocessing.negative_log: expected True or False, got {self.negative_log!r}")
        if self.i0 is not None:
            if isinstance(self.i0, bool) or not isinstance(self.i0, (int, float)) or not (0 < self.i0 < math.inf):
                raise ValueError(f"XRayPreprocessing.i0: expected a finite value > 0 or None, got {self.i0!r}")
            if not self.negative_log:
                raise ValueError("XRayPreprocessing.i0: applies only with negative_log=True")
            object.__setattr__(self, "i0", float(self.i0))
        if not _is_int(self.binning) or self.binning < 1:
            raise ValueError(f"XRayPreprocessing.binning: expected a positive int, got {self.binning!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"XRayPreprocessing.normalize: expected one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}"
            )


def _negative_log(image: Tensor, i0: float | None) -> Tensor:
    """``−log(max(I, ε·I0) / I0)``, ``I0`` defaulting to the image's maximum."""
    reference = float(image.max()) if i0 is None else i0
    if not reference > 0:
        raise ValueError(
            f"negative_log: the image's maximum is {reference:g}; intensities need a positive I0 (pass i0=)"
        )
    return -torch.log(image.clamp(min=INTENSITY_FLOOR * reference) / reference)


class DetectorSizeError(ValueError):
    """An image whose pixel grid is not its geometry's detector (a `ValueError`).

    Attributes:
        detector: the geometry's ``(height, width)`` in pixels.
        image: the image's ``(height, width)``.
    """

    def __init__(self, message: str, detector: tuple[int, int], image: tuple[int, int]) -> None:
        super().__init__(message)
        self.detector = detector
        self.image = image


def _check_geometry(image: Tensor, geometry: ConeBeam | None, what: str) -> None:
    height, width = image.shape[-2:]
    if geometry is not None and (geometry.height, geometry.width) != (height, width):
        raise DetectorSizeError(
            f"{what}: the geometry describes a {geometry.height}×{geometry.width} detector but the image has "
            f"{height}×{width} pixels; pass the geometry of the whole image as read (before cropping or binning)",
            (geometry.height, geometry.width),
            (int(height), int(width)),
        )


def bin_image(image: Float[Tensor, "*B H W"], factor: int) -> Float[Tensor, "*B h w"]:
    """Average ``factor × factor`` blocks, dropping a remainder of rows and columns at the bottom and right.

    The image of `ConeBeam.downsample` (``factor``): pixel ``(u', v')`` is the mean of the block
    starting at ``(factor·u', factor·v')``. Any leading dimensions.
    """
    if factor == 1:
        return image
    height, width = image.shape[-2:]
    binned = avg_pool2d(image.reshape(-1, 1, height, width), factor)
    return binned.reshape(*image.shape[:-2], height // factor, width // factor)


def _bin(image: Tensor, geometry: ConeBeam | None, factor: int, what: str) -> tuple[Tensor, ConeBeam | None]:
    height, width = image.shape[-2:]
    if factor > min(height, width):
        raise ValueError(f"{what}: binning factor {factor} exceeds the image size {height}×{width}")
    return bin_image(image, factor), geometry if geometry is None or factor == 1 else geometry.downsample(factor)


def preprocess_xray(
    pixels: Float[Tensor, "H W"],
    geometry: ConeBeam | None = None,
    options: XRayPreprocessing | None = None,
) -> tuple[Float[Tensor, "1 1 h w"], ConeBeam | None]:
    """Prepare an X-ray as the fixed image of a registration, and its geometry with it.

    The steps of ``options`` run in the order crop → flip → −log → binning → normalise.
    ``geometry`` follows every step that moves pixels: `ConeBeam.crop` for the crop, a mirrored
    principal point for a flip (`FLIPS`), `ConeBeam.downsample` for the binning; its pixel
    spacing grows with the binning, its source-to-detector distance is unchanged.

    Args:
        pixels: ``(H, W)`` values as read (e.g. `xrender.io.XRayImage.pixels`); integer values become
            float64, floating ones keep their dtype.
        geometry: the C-arm geometry of the whole ``H × W`` image as read, or ``None``.
        options: the steps; ``None``: `XRayPreprocessing`'s defaults (nothing changes).

    Returns:
        ``(image, geometry)``: the image ``(1, 1, h, w)`` and the geometry of its pixels (``None``
        if none was given).

    Raises:
        ValueError: a wrong shape, NaN or infinite values, a geometry whose size is not
            ``H × W``, a crop that leaves no pixel, a binning factor larger than the cropped
            image, a non-positive maximum for ``negative_log`` without ``i0``, or a constant
            image for ``"minmax"``/``"zscore"``.
    """
    options = XRayPreprocessing() if options is None else options
    check_finite(check_shape(pixels, "H W", "pixels"), "pixels")
    image = pixels if pixels.is_floating_point() else pixels.double()
    _check_geometry(image, geometry, "preprocess_xray")
    top, left, bottom, right = options.crop
    height, width = image.shape
    if top + bottom >= height or left + right >= width:
        raise ValueError(f"preprocess_xray: crop {options.crop} leaves no pixel of the {height}×{width} image")
    image = image[top : height - bottom, left : width - right]
    if geometry is not None and any(options.crop):
        geometry = geometry.crop(top, left, bottom, right)
    image, geometry = FLIPS[options.flip](image, geometry)
    if options.negative_log:
        image = _negative_log(image, options.i0)
    image, geometry = _bin(image, geometry, options.binning, "preprocess_xray")
    image = NORMALIZATIONS[options.normalize](image)
    return image[None, None], geometry


def fit_to_geometry(
    image: Float[Tensor, "B C H W"], geometry: ConeBeam, target_size: int
) -> tuple[Float[Tensor, "B C h w"], ConeBeam]:
    """Bin an image and its geometry together to a working resolution.

    The factor is the integer nearest to ``max(H, W) / target_size`` (at least 1, at most
    ``min(H, W)``), so the larger side ends up about ``target_size`` pixels: e.g. 1536 → 128
    with factor 12, 1000 → 125 with factor 8. Blocks are averaged and a remainder dropped, as in
    `preprocess_xray`.

    Args:
        image: ``(B, C, H, W)``, e.g. `preprocess_xray`'s output.
        geometry: the geometry of its ``H × W`` pixels.
        target_size: the wanted size of the larger side, pixels (> 0).

    Returns:
        ``(image, geometry)`` binned by the same factor.

    Raises:
        ValueError: a wrong shape, a non-positive ``target_size``, or a geometry whose size is
            not ``H × W``.
    """
    check_shape(image, "B C H W", "image")
    if not _is_int(target_size) or target_size < 1:
        raise ValueError(f"fit_to_geometry: expected a positive int target_size, got {target_size!r}")
    _check_geometry(image, geometry, "fit_to_geometry")
    factor = working_factor(image.shape[-2:], target_size)
    binned, binned_geometry = _bin(image, geometry, factor, "fit_to_geometry")
    return binned, binned_geometry


def working_factor(shape: tuple[int, int], target_size: int) -> int:
    """The binning factor `fit_to_geometry` uses: ``round(max(H, W) / target_size)``, within ``[1, min(H, W)]``."""
    height, width = shape
    return min(max(1, round(max(height, width) / target_size)), min(height, width))
