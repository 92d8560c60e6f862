"""Writing rendered images: a windowed 8-bit PNG to look at, raw NPY and NIfTI to compute with.

`write_image` picks the writer by suffix from `IMAGE_WRITERS` (suffix → function), and writes
atomically (`xrender.io.atomic_output`). Images are ``(C, H, W)`` line integrals.

* ``.png``: one channel, 8-bit grey, linearly windowed between the 1st and 99th percentiles of
  the values, so bone (large line integrals) is bright.
* ``.npy``: the raw ``(C, H, W)`` values as float32.
* ``.nii`` / ``.nii.gz``: the raw values as a 2-D float32 image (vector pixels when ``C > 1``)
  whose spacing is the detector's pixel spacing (column, row) in mm.
* ``.dcm``: one channel as a DX DICOM file with the detector's geometry tags, the Patient
  Orientation of ``pose`` and the values kept to 1/65535 of their range
  (`xrender.io.write_dicom_xray`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import SimpleITK as sitk
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from xrender._checks import check_shape
from xrender.geometry.camera import ConeBeam
from xrender.io import atomic_output, match_suffix, write_dicom_xray

__all__ = ["IMAGE_WRITERS", "PNG_PERCENTILES", "window_8bit", "write_image"]

#: Lower and upper percentiles of the PNG window.
PNG_PERCENTILES = (1.0, 99.0)


def window_8bit(image: Float[Tensor, "H W"]) -> np.ndarray:
    """Map an image linearly to ``uint8``, its `PNG_PERCENTILES` to 0 and 255 (clipped).

    Examples:
        >>> import torch
        >>> from xrender.render.output import window_8bit
        >>> image = torch.linspace(0.0, 1.0, 101).reshape(1, 101)
        >>> pixels = window_8bit(image)
        >>> pixels.dtype
        dtype('uint8')
        >>> pixels[0, [0, 1, 10, 90, 99, 100]].tolist()  # the 1st and 99th percentiles map to 0 and 255
        [0, 0, 23, 232, 255, 255]
    """
    values = image.detach().double().cpu().numpy()
    low, high = np.percentile(values, PNG_PERCENTILES)
    scaled = (values - low) / max(high - low, np.finfo(np.float64).tiny)
    return np.round(255 * np.clip(scaled, 0.0, 1.0)).astype(np.uint8)


def _write_png(image: np.ndarray, geometry: ConeBeam, path: Path, pose: Tensor | None) -> None:
    if image.shape[0] != 1:
        raise ValueError(f"{path}: a PNG holds one channel, got {image.shape[0]}; write .npy or .nii.gz instead")
    Image.fromarray(window_8bit(torch.from_numpy(image[0]))).save(path, format="PNG")


def _write_npy(image: np.ndarray, geometry: ConeBeam, path: Path, pose: Tensor | None) -> None:
    np.save(path, image)


def _write_nifti(image: np.ndarray, geometry: ConeBeam, path: Path, pose: Tensor | None) -> None:
    channels = image.shape[0]
    itk = sitk.GetImageFromArray(image[0] if channels == 1 else np.moveaxis(image, 0, -1), isVector=channels > 1)
    row, column = geometry.pixel_spacing
    itk.SetSpacing((column, row))
    sitk.WriteImage(itk, str(path))


def _write_dicom(image: np.ndarray, geometry: ConeBeam, path: Path, pose: Tensor | None) -> None:
    if image.shape[0] != 1:
        raise ValueError(
            f"{path}: a DICOM X-ray holds one channel, got {image.shape[0]}; write .npy or .nii.gz instead"
        )
    write_dicom_xray(path, torch.from_numpy(image[0]), geometry, pose=pose)


#: Suffix (lower case) → writer ``(image (C, H, W) float32 array, geometry, path, pose or None) -> None``.
IMAGE_WRITERS: Mapping[str, Callable[[np.ndarray, ConeBeam, Path, Tensor | None], None]] = MappingProxyType(
    {".png": _write_png, ".npy": _write_npy, ".nii": _write_nifti, ".nii.gz": _write_nifti, ".dcm": _write_dicom}
)


def write_image(
    image: Float[Tensor, "C H W"],
    geometry: ConeBeam,
    path: str | os.PathLike,
    pose: Float[Tensor, "4 4"] | None = None,
) -> Path:
    """Write a rendered image, the format chosen by ``path``'s suffix (see the module docstring).

    Args:
        image: ``(C, H, W)`` values, e.g. one DRR of `xrender.render.render`'s output.
        geometry: the detector it was rendered on (pixel spacing for NIfTI).
        path: the output file.
        pose: the camera-to-world pose it was rendered at; DICOM records its Patient Orientation.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: an unsupported suffix, a wrong shape, or several channels for a PNG.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> import torch
        >>> from xrender.geometry import ConeBeam
        >>> from xrender.render.output import write_image
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0))
        >>> image = torch.rand(1, 4, 6)  # (C, H, W)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.load(write_image(image, geometry, Path(folder) / "drr.npy")).shape
        (1, 4, 6)
    """
    path = Path(path)
    check_shape(image, "C H W", "image")
    suffix = match_suffix(path, IMAGE_WRITERS)
    if suffix is None:
        raise ValueError(f"{path}: unsupported image format; expected one of {', '.join(IMAGE_WRITERS)}")
    array = image.detach().cpu().to(torch.float32).numpy()
    with atomic_output(path) as staging:
        IMAGE_WRITERS[suffix](array, geometry, staging, pose)
    return path
