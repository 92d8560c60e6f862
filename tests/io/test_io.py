"""Reading and writing volumes: geometry (direction included) for every format, DICOM series, errors."""

import itertools
import re

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio as tio

from xrender import Volume
from xrender.io import atomic, atomic_output, match_suffix, read_volume, write_volume
from xrender.io import volume as volume_io

FILE_SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-10.0, 20.0, 30.0)


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rx = np.array([[1, 0, 0], [0, cc, -sc], [0, sc, cc]])
    return rz @ ry @ rx


ROTATED = _rotation(0.7, -0.5, 0.35)  # oblique, determinant +1 (representable in DICOM)
FLIPPED = _rotation(0.2, 0.1, -0.3) @ np.diag([1.0, 1.0, -1.0])  # oblique and mirrored, determinant -1
DIRECTIONS = {"rotated": ROTATED, "flipped": FLIPPED, "ras": np.diag([-1.0, -1.0, 1.0])}


def _image(direction: np.ndarray, shape=(4, 5, 6)) -> sitk.Image:
    """An int16 CT-like image with distinct voxel values, anisotropic spacing and the given direction."""
    array = (np.arange(np.prod(shape)).reshape(shape) * 7 - 1000).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction.flatten().tolist())
    return image


def _all_indices(image: sitk.Image) -> list[tuple[int, int, int]]:
    return list(itertools.product(*(range(n) for n in image.GetSize())))


def _assert_same_world_and_values(volume: Volume, image: sitk.Image, atol: float) -> None:
    """Every voxel of ``volume`` sits where ITK puts it and holds ITK's value."""
    indices = _all_indices(image)
    expected = torch.tensor([image.TransformIndexToPhysicalPoint(idx) for idx in indices], dtype=torch.float64)
    got = volume.voxel_to_world(torch.tensor(indices, dtype=torch.float64))
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)
    values = torch.tensor([float(image[idx]) for idx in indices], dtype=volume.data.dtype)
    i, j, k = torch.tensor(indices).T
    torch.testing.assert_close(volume.data[0, k, j, i], values)


def _write_dicom_series(folder, image: sitk.Image, series_uid: str) -> None:
    """Write ``image`` slice by slice as a CT series GDCM can group and sort."""
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.10f}" for v in [*direction[:, 0], *direction[:, 1]])
    sx, sy, sz = image.GetSpacing()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slab = image[:, :, k : k + 1]
        position = "\\".join(f"{v:.10f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k)))
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|000d": series_uid + ".0",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": position,
            "0020|0037": orientation,
            "0028|0030": f"{sy}\\{sx}",
            "0018|0050": str(sz),
        }
        for tag, value in tags.items():
            slab.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"series{series_uid.split('.')[-1]}_{k:03d}.dcm"))
        writer.Execute(slab)


# ----------------------------------------------------------------------------- geometry per format
@pytest.mark.parametrize("suffix", FILE_SUFFIXES)
@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_world_positions_match_itk_for_every_format(tmp_path, suffix, direction):
    image = _image(direction)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(image, str(path))
    volume = read_volume(path, dtype=torch.float64)
    assert volume.shape == (4, 5, 6)
    torch.testing.assert_close(volume.direction, torch.from_numpy(direction), atol=1e-5, rtol=0)
    _assert_same_world_and_values(volume, image, atol=1e-3)  # NIfTI stores its geometry in float32


def test_dicom_series_honours_the_direction(tmp_path):
    image = _image(ROTATED)
    _write_dicom_series(tmp_path / "series", image, "1.2.826.0.1.3680043.2.1125.7.1")
    volume = read_volume(tmp_path / "series", dtype=torch.float64)
    assert volume.orientation == Volume.from_sitk(image).orientation
    _assert_same_world_and_values(volume, image, atol=1e-4)


def test_nifti_and_mha_of_one_image_read_to_the_same_geometry(tmp_path):
    image = _image(FLIPPED)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    nifti = read_volume(tmp_path / "ct.nii.gz", dtype=torch.float64)
    meta = read_volume(tmp_path / "ct.mha", dtype=torch.float64)
    torch.testing.assert_close(nifti.affine, meta.affine, atol=1e-4, rtol=0)
    torch.testing.assert_close(nifti.data, meta.data)
    assert nifti.orientation == meta.orientation


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_torchio_read_gives_the_same_world_geometry(tmp_path, suffix):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(_image(ROTATED), str(path))
    ours = read_volume(path, dtype=torch.float64)
    theirs = Volume.from_torchio(tio.ScalarImage(path), dtype=torch.float64)
    torch.testing.assert_close(theirs.affine, ours.affine, atol=1e-4, rtol=0)
    torch.testing.assert_close(theirs.data, ours.data)


def test_read_volume_dtype(tmp_path):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(_image(ROTATED), str(path))
    assert read_volume(path).data.dtype == torch.float32
    assert read_volume(path, dtype=torch.float64).data.dtype == torch.float64


def test_match_suffix_prefers_the_longest():
    assert match_suffix("a/scan.NII.GZ", [".gz", ".nii.gz"]) == ".nii.gz"
    assert match_suffix("p.mrk.json", [".json", ".mrk.json"]) == ".mrk.json"
    assert match_suffix("scan.png", [".nii"]) is None
    assert match_suffix(".nii", [".nii"]) is None  # a suffix alone is not a file name


# ----------------------------------------------------------------------------- DICOM series
def test_dicom_folder_with_several_series_lists_them(tmp_path):
    folder = tmp_path / "study"
    _write_dicom_series(folder, _image(ROTATED), "1.2.826.0.1.3680043.2.1125.7.1")
    _write_dicom_series(folder, _image(ROTATED, shape=(3, 5, 6)), "1.2.826.0.1.3680043.2.1125.7.2")
    with pytest.raises(ValueError, match="2 DICOM series") as error:
        read_volume(folder)
    message = str(error.value)
    assert str(folder) in message
    assert "1.2.826.0.1.3680043.2.1125.7.1 (4 slices)" in message
    assert "1.2.826.0.1.3680043.2.1125.7.2 (3 slices)" in message


def test_dicom_series_uid_picks_one_series(tmp_path):
    folder = tmp_path / "study"
    _write_dicom_series(folder, _image(ROTATED), "1.2.826.0.1.3680043.2.1125.7.1")
    _write_dicom_series(folder, _image(ROTATED, shape=(3, 5, 6)), "1.2.826.0.1.3680043.2.1125.7.2")
    assert read_volume(folder, series_uid="1.2.826.0.1.3680043.2.1125.7.2").shape == (3, 5, 6)
    assert read_volume(folder, series_uid="1.2.826.0.1.3680043.2.1125.7.1").shape == (4, 5, 6)


def test_dicom_unknown_series_uid(tmp_path):
    folder = tmp_path / "series"
    _write_dicom_series(folder, _image(ROTATED), "1.2.826.0.1.3680043.2.1125.7.1")
    with pytest.raises(ValueError, match=re.escape(str(folder)) + ".*no DICOM series with series_uid='9.9'"):
        read_volume(folder, series_uid="9.9")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ": no DICOM series"):
        read_volume(tmp_path)


def test_series_uid_with_a_file_is_an_error(tmp_path):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(_image(ROTATED), str(path))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": series_uid applies to DICOM folders only"):
        read_volume(path, series_uid="1.2.3")


# ----------------------------------------------------------------------------- read errors
def test_missing_path(tmp_path):
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_volume(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii"
    path.touch()
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": could not read as NIfTI: the file is empty"):
        read_volume(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "noise.nii.gz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": could not read as NIfTI \(SimpleITK said: .+\)"):
        read_volume(path)


def test_truncated_metaimage(tmp_path):
    path = tmp_path / "cut.mha"
    sitk.WriteImage(_image(ROTATED), str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": could not read as MetaImage \(SimpleITK said"):
        read_volume(path)


def test_content_not_matching_the_suffix(tmp_path):
    path = tmp_path / "really_a_metaimage.nrrd"
    sitk.WriteImage(_image(ROTATED), str(tmp_path / "x.mha"))
    path.write_bytes((tmp_path / "x.mha").read_bytes())
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": could not read as NRRD"):
        read_volume(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "slice.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": unsupported volume format.*\\.nii\\.gz.*\\.mhd"):
        read_volume(path)


def test_two_dimensional_image(tmp_path):
    path = tmp_path / "xray.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9), dtype=np.float32)), str(path))
    expected = r": expected a 3-D image, got a 2-D image of size \(9, 8\)"
    with pytest.raises(ValueError, match=re.escape(str(path)) + expected):
        read_volume(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_non_finite_voxels_are_refused_and_counted(tmp_path, suffix):
    values = np.zeros((4, 5, 6), dtype=np.float32)
    values[0, 0, 0] = np.nan
    values[1, 2, 3] = np.nan
    values[3, 4, 5] = -np.inf
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    expected = ": 3 of 120 voxel values are not finite (2 NaN, 1 ±Inf)"
    with pytest.raises(ValueError, match=re.escape(str(path) + expected)):
        read_volume(path)


def test_integer_volumes_need_no_finiteness_check(tmp_path):
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), dtype=np.int16)), str(path))
    assert torch.isfinite(read_volume(path).data).all()


# ----------------------------------------------------------------------------- writing
@pytest.mark.parametrize("suffix", FILE_SUFFIXES)
def test_write_read_round_trip(tmp_path, suffix):
    volume = Volume.from_sitk(_image(FLIPPED), dtype=torch.float32)
    path = tmp_path / "deep" / "er" / f"out{suffix}"
    write_volume(volume, path)
    back = read_volume(path)
    torch.testing.assert_close(back.data, volume.data)
    torch.testing.assert_close(back.affine, volume.affine, atol=1e-4, rtol=0)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        {f"out{suffix}", "out.raw"} if suffix in (".mhd", ".nhdr") else {f"out{suffix}"}
    )  # the detached data file of .mhd/.nhdr, and no staging leftovers


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "ct.nii.gz"
    write_volume(Volume.from_sitk(_image(ROTATED)), path)
    write_volume(Volume.from_sitk(_image(ROTATED, shape=(2, 3, 4))), path)
    assert read_volume(path).shape == (2, 3, 4)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def half_write(image, name, **kwargs):
        with open(name, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("ITK ERROR: NiftiImageIO(0x1): disk full")

    monkeypatch.setattr(volume_io.sitk, "WriteImage", half_write)
    path = tmp_path / "ct.nii.gz"
    with pytest.raises(ValueError, match=re.escape(str(path)) + r": could not write \(SimpleITK said: disk full\)"):
        write_volume(Volume.from_sitk(_image(ROTATED)), path)
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_moves_the_named_file_last(tmp_path, monkeypatch):
    moved = []
    replace = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (moved.append(dst.name), replace(src, dst)))
    target = tmp_path / "new" / "a.mhd"
    with atomic_output(target) as staged:
        assert staged.name == "a.mhd"
        assert staged.parent.parent == target.parent
        staged.write_text("header")
        (staged.parent / "a.raw").write_bytes(b"data")
    assert moved == ["a.raw", "a.mhd"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.mhd", "a.raw"]


def test_write_unsupported_suffix(tmp_path):
    path = tmp_path / "ct.dcm"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": unsupported volume format for writing"):
        write_volume(Volume.from_sitk(_image(ROTATED)), path)
    assert not path.exists()


def test_read_geometry_reads_conebeam_fields_and_a_pose_json(tmp_path):
    import json
    from dataclasses import asdict

    from xrender.geometry import get_preset
    from xrender.io import read_geometry

    carm = get_preset("deepfluoro").downsample(4)
    plain, document = tmp_path / "carm.json", tmp_path / "pose.json"
    plain.write_text(json.dumps(asdict(carm)))
    document.write_text(json.dumps({"motion": [0.0] * 6, "geometry": asdict(carm)}))
    assert read_geometry(plain) == carm
    assert read_geometry(document) == carm


@pytest.mark.parametrize(
    ("text", "match"),
    [("{ nope", "expected a JSON object of ConeBeam fields"), ("[1, 2]", "got list"), ('{"sdd": 1}', "not a C-arm")],
)
def test_read_geometry_errors(tmp_path, text, match):
    from xrender.io import read_geometry

    path = tmp_path / "carm.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_geometry(path)
    with pytest.raises(FileNotFoundError):
        read_geometry(tmp_path / "missing.json")
