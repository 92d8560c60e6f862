"""Writing small X-ray DICOM files with pydicom, for the tests."""

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    XRayAngiographicImageStorage,
    XRayRadiofluoroscopicImageStorage,
    generate_uid,
)

SOP_CLASSES = {
    "DX": DigitalXRayImageStorageForPresentation,
    "CR": ComputedRadiographyImageStorage,
    "XA": XRayAngiographicImageStorage,
    "RF": XRayRadiofluoroscopicImageStorage,
    "OT": SecondaryCaptureImageStorage,
}


def write_dicom(
    path: Path, pixels: np.ndarray, *, modality: str = "XA", photometric: str = "MONOCHROME2", **tags
) -> Path:
    """Write a DICOM file (explicit VR little endian) with pixels ``(H, W)``, ``(F, H, W)`` or RGB ``(H, W, 3)``.

    Grey pixels are stored as 16-bit (signed if the array is), colour as 8-bit RGB. ``tags`` are
    set by keyword after the image pixel module, so they may override it.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PhotometricInterpretation = photometric
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric == "RGB"
    if colour:
        ds.SamplesPerPixel, ds.PlanarConfiguration, ds.BitsAllocated = 3, 0, 8
        data = pixels.astype(np.uint8)
    else:
        ds.SamplesPerPixel, ds.BitsAllocated = 1, 16
        data = pixels.astype(np.int16 if np.issubdtype(pixels.dtype, np.signedinteger) else np.uint16)
        ds.PixelRepresentation = int(data.dtype == np.int16)
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
    ds.BitsStored, ds.HighBit = ds.BitsAllocated, ds.BitsAllocated - 1
    ds.PixelRepresentation = ds.get("PixelRepresentation", 0)
    ds.Rows, ds.Columns = data.shape[-3:-1] if colour else data.shape[-2:]
    ds.PixelData = data.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path
