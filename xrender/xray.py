r"""Reading real X-ray images and preparing them for 2D/3D registration.

`read_xray` reads one 2-D image — PNG, TIFF, JPEG, NumPy ``.npy``, DICOM, NIfTI, MetaImage or
NRRD — into an `XRayImage` of float64 pixels ``(H, W)``, with the pixel spacing when the file
records one. `preprocess_xray` then crops, flips, converts intensities to line integrals, bins
and normalises it, carrying a `ConeBeam` geometry along so that the image and its detector
stay in step. `fit_to_geometry` bins an image and its geometry to a working resolution.

**What the pixel values mean.** Pixels are returned in *display orientation*: a higher value is
shown brighter, as in every PNG or TIFF and as DICOM's ``MONOCHROME2`` states. For a raw
*intensity* image (air bright, bone dark — e.g. fluoroscopy) the values are the detected
intensities $I$, higher where more X-ray photons reached the detector; turn them into line
integrals (bone bright, like a DRR) with ``negative_log=True``. A radiograph already shown with
bone bright is attenuation-like as it is: leave ``negative_log`` off.

**DICOM** files are read with pydicom by `xrender.dicom.read_dicom_xray`: the Modality LUT
(Rescale Slope and Intercept) is applied, and ``MONOCHROME1`` (the smallest value is shown white)
is turned into display orientation by negating it relative to its maximum, $x' = \max(x) - x$.
`xrender.dicom` also reads the C-arm geometry and view from the file's tags.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType

import numpy as np
import SimpleITK as sitk
import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn.functional import avg_pool2d

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.io import _sitk_reason, match_suffix

__all__ = [
    "FLIPS",
    "INTENSITY_FLOOR",
    "LUMINANCE_WEIGHTS",
    "NORMALIZATIONS",
    "XRAY_FORMATS",
    "XRayImage",
    "XRayPreprocessing",
    "bin_image",
    "checked_image_file",
    "fit_to_geometry",
    "preprocess_xray",
    "read_xray",
    "working_factor",
]

PathLike = str | os.PathLike

#: Suffix (lower case) → format name, for `read_xray`. A file with another suffix is read when
#: it is a DICOM file (`xrender.dicom.is_dicom`; DICOM files often have no suffix at all).
XRAY_FORMATS: Mapping[str, str] = MappingProxyType(
    {
        ".png": "PNG",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".npy": "NumPy",
        ".dcm": "DICOM",
        ".dicom": "DICOM",
        ".nii": "NIfTI",
        ".nii.gz": "NIfTI",
        ".mha": "MetaImage",
        ".mhd": "MetaImage",
        ".nrrd": "NRRD",
        ".nhdr": "NRRD",
    }
)

#: Weights of red, green and blue in the grey value of a colour image (ITU-R BT.601 luma, as
#: Pillow's ``convert("L")``), applied to the stored values.
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)

#: Intensities are clamped to ``INTENSITY_FLOOR · I0`` before the logarithm of
#: ``negative_log``, so a zero or negative pixel gives at most ``−log(1e−6) ≈ 13.8``.
INTENSITY_FLOOR = 1e-6


@dataclass(frozen=True)
class XRayImage:
    """One X-ray image as read from a file.

    Attributes:
        pixels: ``(H, W)`` float64 values in display orientation (higher = shown brighter; see
            the module docstring). Row 0 is the file's top row, column 0 its left column.
        path: the file it was read from.
        spacing: ``(row, column)`` pixel spacing in mm when the file records one (DICOM Imager
            Pixel Spacing, else Pixel Spacing; the image spacing of NIfTI, MetaImage and NRRD),
            ``None`` for PNG, TIFF, JPEG and NPY files.
    """

    pixels: Float[Tensor, "H W"]
    path: Path
    spacing: tuple[float, float] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``: rows and columns."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))


# ------------------------------------------------------------------------------------ reading
def _plane(array: np.ndarray, path: Path) -> np.ndarray:
    """The 2-D image ``(H, W)`` of a grey array ``(H, W)`` or ``(1, H, W)``."""
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image of shape (H, W), got an array of shape {array.shape}")
    return array


def _gray(array: np.ndarray, components: int, path: Path) -> np.ndarray:
    """Grey values of an array whose last axis holds ``components`` > 1 values per pixel."""
    if components == 2:  # grey and alpha
        return array[..., 0]
    if components in (3, 4):  # RGB, RGBA: alpha dropped
        return array[..., :3] @ np.asarray(LUMINANCE_WEIGHTS)
    raise ValueError(f"{path}: expected grey, grey+alpha, RGB or RGBA pixels, got {components} values per pixel")


def _sitk_pixels(image: sitk.Image, path: Path) -> np.ndarray:
    """A SimpleITK image's grey values, float64 ``(H, W)``."""
    array = sitk.GetArrayFromImage(image).astype(np.float64)  # (H, W[, C]) or (D, H, W[, C])
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        array = _gray(array, components, path)
    return _plane(array, path)


def _sitk_read(path: Path, image_io: str, what: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path), imageIO=image_io)
    except RuntimeError as error:
        raise ValueError(f"{path}: could not read as {what} (SimpleITK said: {_sitk_reason(error)})") from error


def _no_frames(path: Path, frame: int, what: str) -> None:
    if frame != 0:
        raise ValueError(f"{path}: frame={frame} applies to multi-frame DICOM only, not to a {what} file")


def _read_plain(path: Path, frame: int, image_io: str, what: str) -> tuple[np.ndarray, tuple[float, float] | None]:
    """PNG, TIFF, JPEG: no pixel spacing (their resolution tags are not detector spacings)."""
    _no_frames(path, frame, what)
    return _sitk_pixels(_sitk_read(path, image_io, what), path), None


def _read_spaced(path: Path, frame: int, image_io: str, what: str) -> tuple[np.ndarray, tuple[float, float] | None]:
    """NIfTI, MetaImage, NRRD: the image spacing (column, row) becomes (row, column)."""
    _no_frames(path, frame, what)
    image = _sitk_read(path, image_io, what)
    pixels = _sitk_pixels(image, path)
    column, row = image.GetSpacing()[:2]
    return pixels, (float(row), float(column))


def _read_npy(path: Path, frame: int) -> tuple[np.ndarray, tuple[float, float] | None]:
    _no_frames(path, frame, "NumPy")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: could not read as a NumPy .npy array ({error})") from error
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{path}: expected a real-valued array, got dtype {getattr(array, 'dtype', type(array))}")
    if np.iscomplexobj(array):
        raise ValueError(f"{path}: expected a real-valued array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array of shape (H, W), got an array of shape {array.shape}")
    return array.astype(np.float64), None


def _read_dicom(path: Path, frame: int) -> tuple[np.ndarray, tuple[float, float] | None]:
    """pydicom's pixels; Imager Pixel Spacing, else Pixel Spacing (malformed tags are skipped)."""
    from xrender.dicom import read_dicom_xray  # here: xrender.dicom imports this module

    xray = read_dicom_xray(path, frame=frame)
    return xray.pixels.numpy(), xray.tags.imager_pixel_spacing or xray.tags.pixel_spacing


def _is_dicom(path: Path) -> bool:
    from xrender.dicom import is_dicom

    return is_dicom(path)


_Reader = Callable[[Path, int], tuple[np.ndarray, tuple[float, float] | None]]

#: Format name → reader ``(path, frame) -> (pixels (H, W) float64, spacing or None)``.
_READER_OF_FORMAT: Mapping[str, _Reader] = MappingProxyType(
    {
        "PNG": partial(_read_plain, image_io="PNGImageIO", what="PNG"),
        "TIFF": partial(_read_plain, image_io="TIFFImageIO", what="TIFF"),
        "JPEG": partial(_read_plain, image_io="JPEGImageIO", what="JPEG"),
        "NumPy": _read_npy,
        "DICOM": _read_dicom,
        "NIfTI": partial(_read_spaced, image_io="NiftiImageIO", what="NIfTI"),
        "MetaImage": partial(_read_spaced, image_io="MetaImageIO", what="MetaImage"),
        "NRRD": partial(_read_spaced, image_io="NrrdImageIO", what="NRRD"),
    }
)

#: Suffix → reader.
_READERS: Mapping[str, _Reader] = MappingProxyType(
    {suffix: _READER_OF_FORMAT[name] for suffix, name in XRAY_FORMATS.items()}
)


def checked_image_file(path: PathLike, frame: int, caller: str) -> Path:
    """``path`` as a `Path` once it names a non-empty file and ``frame`` is a non-negative int.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``frame`` is not a non-negative int, ``path`` is a folder or an empty file.
    """
    path = Path(path)
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValueError(f"{caller}: expected a non-negative int frame, got {frame!r}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; {caller} reads one image file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: could not read: the file is empty (0 bytes)")
    return path


def read_xray(path: PathLike, *, frame: int = 0) -> XRayImage:
    """Read one 2-D X-ray image.

    Colour images become grey (`LUMINANCE_WEIGHTS`); DICOM Rescale Slope and Intercept are
    applied and ``MONOCHROME1`` is turned into display orientation (module docstring).

    Args:
        path: a ``.png``, ``.tif``/``.tiff`` (8-, 16-bit or float), ``.jpg``/``.jpeg``, ``.npy``
            (a 2-D array), ``.dcm``/``.dicom``, ``.nii``/``.nii.gz``, ``.mha``/``.mhd`` or
            ``.nrrd``/``.nhdr`` file, or a DICOM file under any other name.
        frame: for a multi-frame DICOM file, the index of the frame to read (from 0).

    Returns:
        The image: float64 pixels ``(H, W)``, the path, and the ``(row, column)`` pixel spacing
        in mm when the file records one.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unsupported format (the message lists the supported ones), an empty,
            corrupt or unreadable file, an image that is not 2-D (the message shows the
            expected and the actual shape), a ``frame`` that does not exist, or NaN or infinite
            values. Every message names ``path``.
    """
    path = checked_image_file(path, frame, "read_xray")
    suffix = match_suffix(path, _READERS)
    if suffix is not None:
        reader = _READERS[suffix]
    elif _is_dicom(path):
        reader = _read_dicom
    else:
        raise ValueError(
            f"{path}: unsupported image format; expected one of {', '.join(XRAY_FORMATS)}, or a DICOM file"
        )
    pixels, spacing = reader(path, frame)
    if not np.isfinite(pixels).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values")
    return XRayImage(torch.from_numpy(np.ascontiguousarray(pixels)), path, spacing)


# ------------------------------------------------------------------------------- preprocessing
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


def _check_geometry(image: Tensor, geometry: ConeBeam | None, what: str) -> None:
    height, width = image.shape[-2:]
    if geometry is not None and (geometry.height, geometry.width) != (height, width):
        raise ValueError(
            f"{what}: the geometry describes a {geometry.height}×{geometry.width} detector but the image has "
            f"{height}×{width} pixels; pass the geometry of the whole image as read (before cropping or binning)"
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
        pixels: ``(H, W)`` values as read (e.g. `XRayImage.pixels`); integer values become
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
