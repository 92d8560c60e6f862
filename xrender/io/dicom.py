r"""X-ray DICOM files read with pydicom: the pixels of one frame and the values of its geometric tags.

`read_dicom_xray` reads one frame of a DX, CR, XA or RF file (or any DICOM image, e.g. a secondary
capture, whose geometry tags are then usually missing) together with every geometric tag it
finds (`xrender.geometry.carm.CArmTags`). `xrender.geometry.carm.carm_geometry` turns the tags
into a `ConeBeam`, `xrender.geometry.carm.carm_view` into an initial camera-to-world pose and
the flip that brings the stored image to xrender's view from the source; `read_carm` reads the
file and does both. The geometry module describes what the tags mean.

**Pixels.** Values come in display orientation, as `xrender.io.read_xray` returns them: the
Modality LUT (Rescale Slope and Intercept, or a Modality LUT Sequence) is applied, and a
``MONOCHROME1`` image becomes $\max(x) - x$ (the maximum of the frame read). Colour images (RGB,
YBR) become grey with `xrender.io.LUMINANCE_WEIGHTS`. The VOI LUT and window settings only
change how an image is shown and are ignored.

**Frames.** The positioner angles apply to the first frame; in a multi-frame file whose
Positioner Motion (0018,1500) is ``DYNAMIC``, the Positioner Primary and Secondary Angle
Increments (0018,1520)/(0018,1521) give the angles of the other frames (PS3.3 C.8.7.5.1.3): a
single value is the change per frame, so frame $k$ (from 0) is at $\text{angle} +
k\cdot\text{increment}$; one value per frame is each frame's offset from the first frame's
angle, $\text{angle} + \text{increment}_k$. `CArmTags` holds the angles of the frame read.

**Writing.** `write_dicom_xray` writes an image (e.g. a simulated X-ray) as a single-frame
Digital X-Ray (DX, For Presentation) file: 16-bit ``MONOCHROME2`` pixels whose Rescale Slope and
Intercept map them back to the float values (to 1/65535 of their range), and the detector's
geometry in Rows, Columns, Imager Pixel Spacing, Distance Source to Detector and Distance Source
to Patient (the C-arm's ``sid``), so `read_dicom_xray` and `xrender.geometry.carm.carm_geometry`
give back the pixels and the `ConeBeam` (a detector centred on the principal ray). Given the
pose, its Patient Orientation is written too, so `xrender.geometry.carm.carm_view` keeps the
image as the view from the source it is; the pose itself is not written (the beam direction is
given on reading: ``--view`` or ``--angles``).

**Not read:** the per-frame and shared functional groups of enhanced XA/XRF files, Patient
Position (0018,5100) (the positioner angles are relative to the patient already), and table
positions.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender.geometry.camera import ConeBeam
from xrender.geometry.carm import CArmTags, CArmView, carm_geometry, carm_view, patient_orientation
from xrender.io._paths import PathLike
from xrender.io._pixels import LUMINANCE_WEIGHTS, checked_image_file
from xrender.io.atomic import atomic_output

if TYPE_CHECKING:  # pydicom is imported by the functions that read a file (it takes a tenth of a second)
    from pydicom.dataset import Dataset

__all__ = ["DicomXRay", "is_dicom", "read_carm", "read_dicom_xray", "write_dicom_xray"]

#: Digital X-Ray Image Storage - For Presentation (PS3.4 B.5).
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"

#: What pydicom raises on a corrupt or unreadable file or pixel data, with its ``InvalidDicomError``.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


# --------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class DicomXRay:
    """One frame of an X-ray DICOM file and its geometric tags.

    Attributes:
        path: the file.
        pixels: ``(H, W)`` float64 values in display orientation (module docstring), row 0 the
            file's top row, column 0 its left column.
        frame: the index of the frame read (from 0).
        frames: Number of Frames (0028,0008), 1 for a single-frame file.
        modality: Modality (0008,0060), e.g. ``"XA"``; ``None`` if absent.
        photometric: Photometric Interpretation (0028,0004), e.g. ``"MONOCHROME2"``.
        tags: the geometric tags.
    """

    path: Path
    pixels: Float[Tensor, "H W"]
    frame: int
    frames: int
    modality: str | None
    photometric: str
    tags: CArmTags

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``: rows and columns."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))


# ----------------------------------------------------------------------------------- tag values
def _values(ds: Dataset, keyword: str) -> list | None:
    """A tag's values as a list, or ``None`` if absent or empty."""
    from pydicom.multival import MultiValue

    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]


def _numbers(ds: Dataset, keyword: str) -> tuple[float, ...] | None:
    """A numeric tag's finite values, or ``None`` if absent, empty or not numbers."""
    values = _values(ds, keyword)
    if values is None:
        return None
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return numbers if numbers and all(math.isfinite(n) for n in numbers) else None


def _scalar(ds: Dataset, keyword: str, *, positive: bool = False) -> float | None:
    numbers = _numbers(ds, keyword)
    if numbers is None or len(numbers) != 1 or (positive and numbers[0] <= 0):
        return None
    return numbers[0]


def _spacing(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    numbers = _numbers(ds, keyword)
    if numbers is None or len(numbers) != 2 or min(numbers) <= 0:
        return None
    return (numbers[0], numbers[1])


def _count(ds: Dataset, keyword: str) -> int | None:
    numbers = _numbers(ds, keyword)
    if numbers is None or len(numbers) != 1 or numbers[0] < 1 or not numbers[0].is_integer():
        return None
    return int(numbers[0])


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip().upper() if value is not None else ""
    return text or None


def _texts(ds: Dataset, keyword: str) -> tuple[str, ...] | None:
    values = _values(ds, keyword)
    return None if values is None else tuple(str(v).strip().upper() for v in values)


def _frame_angle(ds: Dataset, keyword: str, frame: int, frames: int) -> float | None:
    """A positioner angle of ``frame``: the first frame's angle plus the increments (C.8.7.5.1.3).

    ``None`` also when the increments hold neither one value nor one per frame.
    """
    angle = _scalar(ds, keyword)
    increments = _numbers(ds, f"{keyword}Increment")
    if angle is None or increments is None or _text(ds, "PositionerMotion") != "DYNAMIC":
        return angle
    if len(increments) == 1:
        return angle + frame * increments[0]
    return angle + increments[frame] if len(increments) == frames else None


def _tags(ds: Dataset, frame: int, frames: int) -> CArmTags:
    return CArmTags(
        rows=_count(ds, "Rows"),
        columns=_count(ds, "Columns"),
        sdd=_scalar(ds, "DistanceSourceToDetector", positive=True),
        sid=_scalar(ds, "DistanceSourceToPatient", positive=True),
        imager_pixel_spacing=_spacing(ds, "ImagerPixelSpacing"),
        pixel_spacing=_spacing(ds, "PixelSpacing"),
        primary_angle_deg=_frame_angle(ds, "PositionerPrimaryAngle", frame, frames),
        secondary_angle_deg=_frame_angle(ds, "PositionerSecondaryAngle", frame, frames),
        positioner_type=_text(ds, "PositionerType"),
        patient_orientation=_texts(ds, "PatientOrientation"),
        view_position=_text(ds, "ViewPosition"),
        detector_primary_angle_deg=_scalar(ds, "DetectorPrimaryAngle"),
        detector_secondary_angle_deg=_scalar(ds, "DetectorSecondaryAngle"),
    )


# ---------------------------------------------------------------------------------------- pixels
def _grey(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored grey values through the Modality LUT (Rescale Slope/Intercept or LUT Sequence)."""
    from pydicom.pixels import apply_modality_lut

    return np.asarray(apply_modality_lut(array, ds), dtype=np.float64)


def _monochrome1(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """``MONOCHROME1`` (smallest value shown white) in display orientation: ``max(x) − x``."""
    values = _grey(array, ds)
    return values.max() - values


def _colour(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """RGB (pydicom already converted YBR to RGB) to grey with `LUMINANCE_WEIGHTS`."""
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected three colour samples per pixel, got an array of shape {array.shape}")
    return array.astype(np.float64) @ np.asarray(LUMINANCE_WEIGHTS)


#: Photometric Interpretation → ``(decoded frame, dataset) -> grey values (H, W)``.
_PHOTOMETRIC: Mapping[str, Callable[[np.ndarray, Dataset], np.ndarray]] = MappingProxyType(
    {
        "MONOCHROME1": _monochrome1,
        "MONOCHROME2": _grey,
        "RGB": _colour,
        "YBR_FULL": _colour,
        "YBR_FULL_422": _colour,
        "YBR_ICT": _colour,
        "YBR_RCT": _colour,
    }
)


def is_dicom(path: PathLike) -> bool:
    """Whether ``path`` is a DICOM file (PS3.10): the 128-byte preamble followed by ``DICM``."""
    try:
        with open(path, "rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_dicom_xray(path: PathLike, *, frame: int = 0) -> DicomXRay:
    """Read one frame of an X-ray DICOM file with pydicom, and its geometric tags.

    Args:
        path: a DICOM file (PS3.10 format: preamble and ``DICM`` prefix), any name.
        frame: the index (from 0) of the frame to read from a multi-frame file.

    Returns:
        The frame's float64 pixels ``(H, W)`` in display orientation (module docstring), with
        the file's `CArmTags` (positioner angles of this frame).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a negative or non-int ``frame``, a folder, a file that is not DICOM or is
            corrupt, no pixel data, a ``frame`` that does not exist, an unsupported Photometric
            Interpretation, a frame that is not 2-D, or NaN or infinite values. Every message
            names ``path`` and what was expected.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    errors = (InvalidDicomError, *_READ_ERRORS)
    path = checked_image_file(path, frame, "read_dicom_xray")
    try:
        ds = pydicom.dcmread(path)
    except errors as error:
        raise ValueError(f"{path}: could not read as DICOM (pydicom said: {error})") from error
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        kind = _text(ds, "Modality") or "DICOM"
        raise ValueError(f"{path}: expected image pixels (Pixel Data (7FE0,0010)), found none in this {kind} file")
    frames = _count(ds, "NumberOfFrames") or 1
    if frame >= frames:
        raise ValueError(f"{path}: frame {frame} does not exist; the file holds {frames} frame(s)")
    photometric = _text(ds, "PhotometricInterpretation") or ""
    if photometric not in _PHOTOMETRIC:
        raise ValueError(
            f"{path}: expected a Photometric Interpretation (0028,0004) of {', '.join(_PHOTOMETRIC)}, "
            f"found {photometric or 'none'}"
        )
    try:
        pixels = _PHOTOMETRIC[photometric](pixel_array(ds, index=frame), ds)
    except errors as error:
        raise ValueError(f"{path}: could not decode frame {frame} of the pixel data ({error})") from error
    if pixels.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D frame of shape (Rows, Columns), got an array of shape {pixels.shape}")
    if not np.isfinite(pixels).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values")
    return DicomXRay(
        path=path,
        pixels=torch.from_numpy(np.ascontiguousarray(pixels)),
        frame=frame,
        frames=frames,
        modality=_text(ds, "Modality"),
        photometric=photometric,
        tags=_tags(ds, frame, frames),
    )


def read_carm(
    path: PathLike,
    isocenter: Float[Tensor, "3"],
    *,
    frame: int = 0,
    sdd: float | None = None,
    sid: float | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    angles: tuple[float, float] | None = None,
    view: str | None = None,
) -> tuple[DicomXRay, ConeBeam, CArmView]:
    """Read an X-ray DICOM file, its C-arm geometry and its initial view in one call.

    `read_dicom_xray`, then `xrender.geometry.carm.carm_geometry` and
    `xrender.geometry.carm.carm_view` of its tags; the keywords are those of the three
    functions, and the error messages about the tags name ``path``.

    Returns:
        ``(xray, geometry, view)``: pass ``xray.pixels``, ``geometry`` and
        ``XRayPreprocessing(flip=view.flip, ...)`` to `xrender.image.preprocess_xray`, and
        ``view.pose`` as the initial pose.

    Raises:
        FileNotFoundError, ValueError: as the three functions do.
    """
    xray = read_dicom_xray(path, frame=frame)
    origin = str(xray.path)
    geometry = carm_geometry(xray.tags, xray.shape, sdd=sdd, sid=sid, pixel_spacing=pixel_spacing, origin=origin)
    return xray, geometry, carm_view(xray.tags, isocenter, sid=sid, angles=angles, view=view, origin=origin)


# --------------------------------------------------------------------------------------- writing
def write_dicom_xray(
    path: PathLike,
    image: Float[Tensor, "H W"],
    geometry: ConeBeam,
    *,
    pose: Float[Tensor, "4 4"] | None = None,
    description: str = "xrender",
) -> Path:
    """Write ``image`` as a DX DICOM file with the detector's geometry tags (see the module docstring).

    Args:
        path: the file to write (any name; ``.dcm`` by custom).
        image: ``(H, W)`` finite values, e.g. −log(I/I₀) of a simulated X-ray (bright = more attenuation).
        geometry: the detector it was made on; its size must be the image's.
        pose: the camera-to-world pose it was made at: written as its Patient Orientation
            (`xrender.geometry.carm.patient_orientation`), so a reader knows the image is a view
            from the source (without it, `xrender.geometry.carm.carm_view` takes the image as
            radiographs are usually shown, which mirrors views other than AP).
        description: Series Description (0008,103E).

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: an image that is not 2-D, not finite, or of another size than ``geometry``'s
            detector; a detector whose principal point is off centre (DICOM has no tag for it).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    values = image.detach().cpu().double().numpy()
    if values.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image (H, W), got shape {tuple(values.shape)}")
    if (geometry.height, geometry.width) != values.shape:
        raise ValueError(
            f"{path}: the image is {values.shape[0]}×{values.shape[1]} pixels but the geometry's detector is "
            f"{geometry.height}×{geometry.width}"
        )
    if any(offset != 0 for offset in geometry.principal_offset):
        raise ValueError(
            f"{path}: DICOM has no tag for a principal point off the detector's centre "
            f"(principal_offset {geometry.principal_offset} mm); write .npy or .nii.gz with the geometry as JSON"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    slope = (high - low) / 65535 if high > low else 1.0
    stored = np.round((values - low) / slope).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PresentationIntentType = "DX", "FOR PRESENTATION"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SeriesDescription = description
    ds.Manufacturer = "xrender"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = values.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", f"{low:.10g}", "US"
    ds.ImagerPixelSpacing = [f"{v:.10g}" for v in geometry.pixel_spacing]
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = f"{geometry.sdd:.10g}", f"{geometry.sid:.10g}"
    if pose is not None:
        ds.PatientOrientation = list(patient_orientation(pose))
    ds.PixelData = stored.tobytes()
    with atomic_output(path) as staging:
        ds.save_as(staging, enforce_file_format=True)
    return path
