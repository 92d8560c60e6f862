"""`describe`: the numbers a person needs to check a volume before rendering it."""

import re

import numpy as np
import pytest
import SimpleITK as sitk

import xrender.info as info
from xrender.info import describe


@pytest.fixture
def ras_volume(tmp_path):
    """A (D, H, W) = (3, 4, 5) RAS-oriented NIfTI with values -1000 … 1360 in steps of 40."""
    image = sitk.GetImageFromArray((np.arange(60).reshape(3, 4, 5) * 40 - 1000).astype(np.int16))
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _value(text: str, label: str) -> str:
    """The value on the line that starts with ``label``."""
    (line,) = [line for line in text.splitlines() if line.startswith(label + " ")]
    return line[len(label) :].strip()


def test_describe_volume_reports_the_numbers(ras_volume):
    text = describe(ras_volume)
    assert _value(text, "file") == str(ras_volume)
    assert _value(text, "format") == "NIfTI"
    assert _value(text, "shape") == "(D, H, W) = (3, 4, 5), 1 channel"
    assert _value(text, "spacing") == "0.5, 0.75, 2 mm (along i, j, k)"
    assert _value(text, "orientation") == "RAS"
    assert _value(text, "origin") == "(10.00, -20.00, 30.00) mm (centre of voxel 0, LPS)"
    assert _value(text, "extent") == "2.50 x 3.00 x 6.00 mm (along i, j, k)"
    # voxels span x 10.25 … 7.75 (pointing right), y -19.625 … -22.625, z 29 … 35
    assert _value(text, "bounds") == "(7.75, -22.62, 29.00) mm to (10.25, -19.62, 35.00) mm (LPS)"
    assert _value(text, "values") == "min -1000, max 1360, mean 180"
    # centre index (2, 1.5, 1) → (10 - 1, -20 - 1.125, 30 + 2)
    assert _value(text, "isocentre") == "(9.00, -21.12, 32.00) mm (LPS)"


def test_describe_aligns_values_and_prints_the_direction(ras_volume):
    lines = describe(ras_volume).splitlines()
    assert len({len(re.match(r"\S+\s+", line).group(0)) for line in lines if line[0] != " "}) == 1
    start = next(n for n, line in enumerate(lines) if line.startswith("direction"))
    rows = [line.split("[", 1)[1] for line in lines[start : start + 3]]
    assert rows == ["-1.0000  +0.0000  +0.0000]", "+0.0000  -1.0000  +0.0000]", "+0.0000  +0.0000  +1.0000]"]


def test_describe_missing_path(tmp_path):
    path = tmp_path / "absent.nrrd"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        describe(path)


def test_describe_unsupported_suffix(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": cannot describe this file; expected one of .nii"):
        describe(path)


def test_describe_folder_without_dicom(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ": no DICOM series"):
        describe(tmp_path)


def test_describers_registry_accepts_new_kinds(tmp_path, monkeypatch):
    path = tmp_path / "views.h5"
    path.write_bytes(b"\x89HDF")
    monkeypatch.setitem(info.DESCRIBERS, ".h5", lambda p: f"h5 file {p.name}")
    assert describe(path) == "h5 file views.h5"
