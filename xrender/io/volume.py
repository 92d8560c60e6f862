"""Reading and writing CT volumes (NIfTI, NRRD, MetaImage, DICOM series) through SimpleITK.

Every reader returns a `Volume` whose affine is built from the file's
spacing, origin **and direction matrix** (world frame: mm, LPS, as ITK and DICOM use it), so an
oblique or flipped acquisition lands where the scanner put it.

File formats are chosen by suffix through the `FILE_FORMATS` registry, each bound to one
SimpleITK ImageIO so that a file whose content does not match its name fails loudly instead of
being guessed. A folder is read as a DICOM series.

**Folders holding several DICOM series.** `read_volume` refuses to guess: unless
``series_uid`` names one, it raises a `ValueError` listing every series UID with its
slice count. Picking "the largest" would silently choose between e.g. a bone- and a soft-tissue
reconstruction of the same scan, which often have the same number of slices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk
import torch

from xrender.io._paths import PathLike, match_suffix
from xrender.io._sitk import sitk_execute, sitk_reason
from xrender.io.atomic import atomic_output
from xrender.volume import Volume

__all__ = ["FILE_FORMATS", "FileFormat", "read_volume", "write_volume"]


class FileFormat(NamedTuple):
    """A volume file format: its display name and the SimpleITK ImageIO that reads and writes it."""

    name: str
    image_io: str


#: Suffix (lower case) → file format, for `read_volume` and `write_volume`.
FILE_FORMATS: Mapping[str, FileFormat] = MappingProxyType(
    {
        ".nii": FileFormat("NIfTI", "NiftiImageIO"),
        ".nii.gz": FileFormat("NIfTI", "NiftiImageIO"),
        ".nrrd": FileFormat("NRRD", "NrrdImageIO"),
        ".nhdr": FileFormat("NRRD", "NrrdImageIO"),
        ".mha": FileFormat("MetaImage", "MetaImageIO"),
        ".mhd": FileFormat("MetaImage", "MetaImageIO"),
    }
)


def _supported() -> str:
    return ", ".join(FILE_FORMATS) + ", or a folder holding a DICOM series"


def _read_image_file(path: Path, file_format: FileFormat) -> sitk.Image:
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: could not read as {file_format.name}: the file is empty (0 bytes)")
    return sitk_execute(lambda: sitk.ReadImage(str(path), imageIO=file_format.image_io), path, file_format.name)


#: Suffix → reader returning a SimpleITK image; folders go to `_read_dicom_folder`.
_READERS: Mapping[str, Callable[[Path], sitk.Image]] = MappingProxyType(
    {suffix: partial(_read_image_file, file_format=fmt) for suffix, fmt in FILE_FORMATS.items()}
)


def _read_dicom_folder(path: Path, series_uid: str | None) -> sitk.Image:
    """Read one DICOM series from a folder (not its sub-folders), sorted by slice position."""
    reader = sitk.ImageSeriesReader()
    folder = str(path)
    files = {uid: reader.GetGDCMSeriesFileNames(folder, uid) for uid in reader.GetGDCMSeriesIDs(folder)}
    if not files:
        raise ValueError(f"{path}: no DICOM series found in this folder (sub-folders are not searched)")
    listing = "; ".join(f"{uid} ({len(names)} slices)" for uid, names in files.items())
    if series_uid is None and len(files) > 1:
        raise ValueError(f"{path}: holds {len(files)} DICOM series, pass series_uid= to pick one of: {listing}")
    uid = next(iter(files)) if series_uid is None else series_uid
    if uid not in files:
        raise ValueError(f"{path}: no DICOM series with series_uid={uid!r}; the folder holds: {listing}")
    reader.SetFileNames(files[uid])
    return sitk_execute(reader.Execute, path, f"DICOM series {uid}")


def read_volume(path: PathLike, *, dtype: torch.dtype = torch.float32, series_uid: str | None = None) -> Volume:
    """Read a 3-D volume with its full geometry (spacing, origin, direction).

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` file, or a
            folder holding a DICOM series.
        dtype: floating dtype of the returned voxel values (DICOM rescale slope and intercept
            are applied, so CT values are in HU).
        series_uid: for a DICOM folder, the SeriesInstanceUID (0020,000E) to read; required
            when the folder holds several series.

    Returns:
        The volume: data ``(C, D, H, W)`` (``C > 1`` for vector pixels), affine mapping voxel
        indices to world mm in LPS, isocentre at the volume centre.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported suffix, empty or unreadable file, folder without a DICOM
            series, several series and no ``series_uid`` (the message lists them), unknown
            ``series_uid``, ``series_uid`` given for a file, an image that is not 3-D, or NaN or
            infinite voxel values (the message counts them). Every message names ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        image = _read_dicom_folder(path, series_uid)
    else:
        suffix = match_suffix(path, _READERS)
        if suffix is None:
            raise ValueError(f"{path}: unsupported volume format; expected {_supported()}")
        if series_uid is not None:
            raise ValueError(f"{path}: series_uid applies to DICOM folders only, got a {suffix} file")
        image = _READERS[suffix](path)
    if image.GetDimension() != 3:
        raise ValueError(
            f"{path}: expected a 3-D image, got a {image.GetDimension()}-D image of size {image.GetSize()}"
        )
    nifti = not path.is_dir() and FILE_FORMATS[match_suffix(path, _READERS)].name == "NIfTI"
    _check_finite_voxels(_nifti_values(path) if nifti else sitk.GetArrayViewFromImage(image), path)
    return Volume.from_sitk(image, dtype=dtype)


def _nifti_values(path: Path) -> np.ndarray | None:
    """A NIfTI file's stored voxel values if they are floating point (``None`` otherwise), read by nibabel.

    ITK's NIfTI reader (before ITK 6) silently replaces NaN and ±Inf by 0, so SimpleITK's image
    cannot tell whether the file held them.
    """
    import nibabel

    image = nibabel.load(path)
    return np.asanyarray(image.dataobj) if np.issubdtype(image.get_data_dtype(), np.floating) else None


def _check_finite_voxels(values: np.ndarray | None, path: Path) -> None:
    """Refuse NaN or infinite voxels, counted in the message, before anything renders them."""
    if values is None or not np.issubdtype(values.dtype, np.floating):
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    nan = int(np.isnan(values).sum())
    bad = int(finite.size - finite.sum())
    raise ValueError(
        f"{path}: {bad} of {finite.size} voxel values are not finite ({nan} NaN, {bad - nan} ±Inf); "
        "expected finite values (in HU for a CT): replace them in the file, e.g. by -1000 (air)"
    )


def write_volume(volume: Volume, path: PathLike) -> None:
    """Write a volume's voxels and geometry (spacing, origin, direction) atomically.

    The isocentre is not stored: a volume read back has its isocentre at the volume centre.
    ``.mhd`` and ``.nhdr`` headers come with a detached ``<stem>.raw`` data file next to them.

    Args:
        volume: the volume; its data dtype is kept (float32 stays float32).
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` file; parent
            folders are created, an existing file is replaced.

    Raises:
        ValueError: unsupported suffix (DICOM is read-only here), or SimpleITK failed to write.
    """
    path = Path(path)
    suffix = match_suffix(path, FILE_FORMATS)
    if suffix is None:
        raise ValueError(f"{path}: unsupported volume format for writing; expected one of {', '.join(FILE_FORMATS)}")
    image = volume.to_sitk()
    with atomic_output(path) as staged:
        try:
            sitk.WriteImage(image, str(staged), imageIO=FILE_FORMATS[suffix].image_io)
        except RuntimeError as error:
            raise ValueError(f"{path}: could not write (SimpleITK said: {sitk_reason(error)})") from error
