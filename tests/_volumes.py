"""Small CT files for command-line tests."""

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def water_cube_ct(folder: Path) -> Path:
    """A 20³ water cube (0 HU) in air, 4 mm voxels, written as ``folder/ct.nii.gz``."""
    array = np.full((20, 20, 20), -1000, dtype=np.int16)
    array[5:15, 5:15, 5:15] = 0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    path = folder / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path
