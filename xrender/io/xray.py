r"""Reading real X-ray images: PNG, TIFF, JPEG, NumPy, DICOM, NIfTI, MetaImage, NRRD.

`read_xray` reads one 2-D image — PNG, TIFF, JPEG, NumPy ``.npy``, DICOM, NIfTI, MetaImage or
NRRD — into an `XRayImage` of float64 pixels ``(H, W)``, with the pixel spacing when the file
records one. `xrender.image.preprocess_xray` then prepares it as the fixed image of a
registration.

**What the pixel values mean.** Pixels are returned in *display orientation*: a higher value is
shown brighter, as in every PNG or TIFF and as DICOM's ``MONOCHROME2`` states. For a raw
*intensity* image (air bright, bone dark — e.g. fluoroscopy) the values are the detected
intensities $I$, higher where more X-ray photons reached the detector; turn them into line
integrals (bone bright, like a DRR) with ``negative_log=True`` of
`xrender.image.XRayPreprocessing`. A radiograph already shown with bone bright is
attenuation-like as it is: leave ``negative_log`` off.

**DICOM** files are read with pydicom by `xrender.io.dicom.read_dicom_xray`: the Modality LUT
(Rescale Slope and Intercept) is applied, and ``MONOCHROME1`` (the smallest value is shown white)
is turned into display orientation by negating it relative to its maximum, $x' = \max(x) - x$.
`xrender.io.dicom.read_carm` also reads the C-arm geometry and view from the file's tags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType

import numpy as np
import SimpleITK as sitk
import torch
from jaxtyping import Float
from torch import Tensor

from xrender.io._paths import PathLike, match_suffix
from xrender.io._pixels import LUMINANCE_WEIGHTS, checked_image_file
from xrender.io._sitk import sitk_execute
from xrender.io.dicom import is_dicom, read_dicom_xray

__all__ = ["XRAY_FORMATS", "XRayImage", "read_xray"]

#: Suffix (lower case) → format name, for `read_xray`. A file with another suffix is read when
#: it is a DICOM file (`xrender.io.dicom.is_dicom`; DICOM files often have no suffix at all).
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
    return sitk_execute(lambda: sitk.ReadImage(str(path), imageIO=image_io), path, what)


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
    xray = read_dicom_xray(path, frame=frame)
    return xray.pixels.numpy(), xray.tags.imager_pixel_spacing or xray.tags.pixel_spacing


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
    elif is_dicom(path):
        reader = _read_dicom
    else:
        raise ValueError(
            f"{path}: unsupported image format; expected one of {', '.join(XRAY_FORMATS)}, or a DICOM file"
        )
    pixels, spacing = reader(path, frame)
    if not np.isfinite(pixels).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values")
    return XRayImage(torch.from_numpy(np.ascontiguousarray(pixels)), path, spacing)
