"""File input and output: CT volumes, X-ray images (DICOM too), landmarks, state files, atomic writes.

Every reader and writer of xrender lives in this package, one module per kind of file:

* `xrender.io.volume`: CT volumes (NIfTI, NRRD, MetaImage, DICOM series) through SimpleITK.
* `xrender.io.xray`: 2-D X-ray images (PNG, TIFF, JPEG, NumPy, DICOM, NIfTI, MetaImage, NRRD).
* `xrender.io.dicom`: X-ray DICOM files through pydicom, their pixels and geometric tags, and
  `read_carm` (file → C-arm geometry and initial pose, with `xrender.geometry.carm`).
* `xrender.io.geometry`: C-arm geometry JSON files (`read_geometry`).
* `xrender.io.landmarks`: landmark files (3D Slicer ``.fcsv`` and ``.mrk.json``, CSV).
* `xrender.io.checkpoint`: tagged PyTorch state files, written atomically and read safely.
* `xrender.io.atomic`: `atomic_output`, the staged write every writer uses.

Paths are `PathLike` (a string or an `os.PathLike`); `match_suffix` picks a format by suffix.
The names below are imported from those modules; the image operations on X-rays (crop, flip,
−log, binning) are in `xrender.image`.
"""

from xrender.io._paths import PathLike, match_suffix
from xrender.io._pixels import LUMINANCE_WEIGHTS
from xrender.io.atomic import atomic_output
from xrender.io.checkpoint import CheckpointError, SavedModule, load_state, save_state
from xrender.io.dicom import DicomXRay, is_dicom, read_carm, read_dicom_xray, write_dicom_xray
from xrender.io.geometry import read_geometry
from xrender.io.landmarks import read_landmarks, write_landmarks
from xrender.io.volume import FILE_FORMATS, FileFormat, read_volume, write_volume
from xrender.io.xray import XRAY_FORMATS, XRayImage, read_xray

__all__ = [
    "FILE_FORMATS",
    "LUMINANCE_WEIGHTS",
    "XRAY_FORMATS",
    "CheckpointError",
    "DicomXRay",
    "FileFormat",
    "PathLike",
    "SavedModule",
    "XRayImage",
    "atomic_output",
    "is_dicom",
    "load_state",
    "match_suffix",
    "read_carm",
    "read_dicom_xray",
    "read_geometry",
    "write_dicom_xray",
    "read_landmarks",
    "read_volume",
    "read_xray",
    "save_state",
    "write_landmarks",
    "write_volume",
]
