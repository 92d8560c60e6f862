"""Reading X-ray images from real file formats, and preprocessing them with their geometry."""

import math
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from _dicom_files import write_dicom

from xrender.geometry.camera import ConeBeam
from xrender.image import (
    FLIPS,
    INTENSITY_FLOOR,
    DetectorSizeError,
    XRayPreprocessing,
    fit_to_geometry,
    preprocess_xray,
)
from xrender.io import LUMINANCE_WEIGHTS, XRayImage, read_xray


def _write(array: np.ndarray, path, *, vector: bool = False, spacing=None):
    image = sitk.GetImageFromArray(array, isVector=vector)
    if spacing is not None:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _ramp(dtype, height=3, width=4, scale=1) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) * scale).astype(dtype)


# ------------------------------------------------------------------------------------ reading
@pytest.mark.parametrize(
    ("name", "dtype", "scale"),
    [("eight.png", np.uint8, 20), ("sixteen.png", np.uint16, 5000), ("sixteen.tif", np.uint16, 5000)],
)
def test_integer_images_round_trip(tmp_path, name, dtype, scale):
    array = _ramp(dtype, scale=scale)
    image = read_xray(_write(array, tmp_path / name))
    assert isinstance(image, XRayImage)
    assert image.pixels.dtype == torch.float64
    assert image.shape == (3, 4)
    np.testing.assert_array_equal(image.pixels.numpy(), array.astype(np.float64))
    assert image.spacing is None
    assert image.path == tmp_path / name


def test_sixteen_bit_values_above_255_survive(tmp_path):
    image = read_xray(_write(np.array([[0, 1000], [40000, 65535]], dtype=np.uint16), tmp_path / "x.png"))
    assert image.pixels.tolist() == [[0.0, 1000.0], [40000.0, 65535.0]]


def test_float_tiff_keeps_fractions(tmp_path):
    array = np.array([[0.25, 1.5, -3.75], [1e-3, 2e4, 7.0]], dtype=np.float32)
    image = read_xray(_write(array, tmp_path / "x.tiff"))
    np.testing.assert_array_equal(image.pixels.numpy(), array.astype(np.float64))


def test_jpeg_is_read_approximately(tmp_path):
    array = np.tile(np.linspace(0, 240, 16), (16, 1)).astype(np.uint8)  # smooth: little JPEG loss
    image = read_xray(_write(array, tmp_path / "x.jpg"))
    assert image.shape == (16, 16)
    assert np.abs(image.pixels.numpy() - array).max() <= 8


def test_npy_round_trip(tmp_path):
    array = np.array([[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]], dtype=np.float32)
    np.save(tmp_path / "x.npy", array)
    image = read_xray(tmp_path / "x.npy")
    np.testing.assert_array_equal(image.pixels.numpy(), array)
    assert image.pixels.dtype == torch.float64
    assert image.spacing is None


def test_rgb_and_rgba_become_luminance(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    wr, wg, wb = LUMINANCE_WEIGHTS
    expected = [[255 * wr, 255 * wg], [255 * wb, 10 * wr + 20 * wg + 30 * wb]]
    image = read_xray(_write(rgb, tmp_path / "rgb.png", vector=True))
    np.testing.assert_allclose(image.pixels.numpy(), expected, rtol=1e-12)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 7, np.uint8)], axis=-1)  # alpha is ignored
    image = read_xray(_write(rgba, tmp_path / "rgba.png", vector=True))
    np.testing.assert_allclose(image.pixels.numpy(), expected, rtol=1e-12)


def test_dicom_values_and_imager_pixel_spacing(tmp_path):
    array = _ramp(np.uint16, scale=100)
    image = read_xray(write_dicom(tmp_path / "x.dcm", array, ImagerPixelSpacing=[0.35, 0.25]))  # (row, column)
    np.testing.assert_array_equal(image.pixels.numpy(), array)
    assert image.pixels.dtype == torch.float64
    assert image.spacing == (0.35, 0.25)


@pytest.mark.parametrize(
    ("tags", "spacing"),
    [
        ({"ImagerPixelSpacing": [0.35, 0.25], "PixelSpacing": [0.3, 0.2]}, (0.35, 0.25)),  # detector plane wins
        ({"PixelSpacing": [0.3, 0.2]}, (0.3, 0.2)),
        ({"ImagerPixelSpacing": [11.5, 22.5], "PixelSpacing": [0.3, 0.2]}, (0.3, 0.2)),  # made malformed below
        ({}, None),
    ],
)
def test_dicom_spacing_tags_in_order_of_preference(tmp_path, tags, spacing):
    path = write_dicom(tmp_path / "x.dcm", np.zeros((2, 3), np.uint16), **tags)
    path.write_bytes(path.read_bytes().replace(b"11.5\\22.5 ", b"n/a       "))  # a malformed tag is skipped
    assert read_xray(path).spacing == spacing


def test_dicom_rescale_slope_and_intercept_are_applied(tmp_path):
    stored = _ramp(np.uint16)
    path = write_dicom(tmp_path / "x.dcm", stored, RescaleSlope=2, RescaleIntercept=-5)
    np.testing.assert_array_equal(read_xray(path).pixels.numpy(), 2.0 * stored - 5)


def test_convention_dicom_monochrome1_is_negated_relative_to_its_maximum(tmp_path):
    array = _ramp(np.uint16, scale=100)  # 0 … 1100
    path = write_dicom(tmp_path / "x.dcm", array, photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_xray(path).pixels.numpy(), 1100.0 - array)
    # after the rescale: max(x) − x of x = 2·stored − 5
    path = write_dicom(tmp_path / "y.dcm", array, photometric="MONOCHROME1", RescaleSlope=2, RescaleIntercept=-5)
    np.testing.assert_array_equal(read_xray(path).pixels.numpy(), 2195.0 - (2.0 * array - 5))


def test_dicom_without_suffix_is_recognised(tmp_path):
    array = _ramp(np.uint16)
    shutil.copy(write_dicom(tmp_path / "x.dcm", array), tmp_path / "IM000001")
    np.testing.assert_array_equal(read_xray(tmp_path / "IM000001").pixels.numpy(), array)
    (tmp_path / "NOTDICOM").write_bytes(bytes(200))
    with pytest.raises(ValueError, match=r"NOTDICOM: unsupported image format; expected one of .*or a DICOM file"):
        read_xray(tmp_path / "NOTDICOM")


def test_multiframe_dicom_reads_the_requested_frame(tmp_path):
    frames = _ramp(np.uint16, height=3 * 2, width=4).reshape(3, 2, 4)  # 3 frames of 2 × 4
    path = write_dicom(tmp_path / "cine.dcm", frames)
    np.testing.assert_array_equal(read_xray(path).pixels.numpy(), frames[0])
    np.testing.assert_array_equal(read_xray(path, frame=2).pixels.numpy(), frames[2])
    with pytest.raises(ValueError, match=r"frame 3 does not exist; the file holds 3 frame"):
        read_xray(path, frame=3)
    with pytest.raises(ValueError, match="non-negative int frame"):
        read_xray(path, frame=-1)


def test_frame_is_refused_for_single_image_formats(tmp_path):
    path = _write(_ramp(np.uint8), tmp_path / "x.png")
    with pytest.raises(ValueError, match="multi-frame DICOM only"):
        read_xray(path, frame=1)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_medical_formats_give_row_column_spacing(tmp_path, suffix):
    array = _ramp(np.float32)
    image = read_xray(_write(array, tmp_path / f"x{suffix}", spacing=(0.3, 0.2)))  # SimpleITK: (column, row)
    np.testing.assert_array_equal(image.pixels.numpy(), array)
    assert image.spacing == pytest.approx((0.2, 0.3))


# ------------------------------------------------------------------------------ reading errors
def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.png: no such file"):
        read_xray(tmp_path / "nothere.png")


@pytest.mark.parametrize("name", ["broken.png", "broken.tif", "broken.dcm", "broken.mha", "broken.npy"])
def test_corrupt_file_names_the_path_and_the_format(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01 this is not an image " * 20)
    with pytest.raises(ValueError, match=rf"{name}: could not read as"):
        read_xray(path)


def test_empty_file_is_reported(tmp_path):
    (tmp_path / "empty.png").touch()
    with pytest.raises(ValueError, match=r"empty\.png: .*empty \(0 bytes\)"):
        read_xray(tmp_path / "empty.png")


def test_three_dimensional_arrays_are_refused_with_both_shapes(tmp_path):
    np.save(tmp_path / "stack.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"stack\.npy: expected a 2-D array of shape \(H, W\), got .*\(2, 3, 4\)"):
        read_xray(tmp_path / "stack.npy")
    _write(np.zeros((2, 3, 4), np.float32), tmp_path / "stack.mha")
    with pytest.raises(ValueError, match=r"stack\.mha: expected a 2-D image of shape \(H, W\), got .*\(2, 3, 4\)"):
        read_xray(tmp_path / "stack.mha")


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "image.bmpx"
    path.write_bytes(b"whatever " * 20)
    with pytest.raises(ValueError, match=r"image\.bmpx: unsupported image format; expected one of .*\.png.*\.dcm"):
        read_xray(path)


def test_non_finite_and_non_numeric_arrays_are_refused(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"nan\.npy: the image holds NaN or infinite values"):
        read_xray(tmp_path / "nan.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"text\.npy: expected a real-valued array"):
        read_xray(tmp_path / "text.npy")


# ------------------------------------------------------------------------------ preprocessing
def _carm(height=4, width=6, offset=(0.0, 0.0)) -> ConeBeam:
    return ConeBeam(sdd=1000.0, height=height, width=width, pixel_spacing=(0.2, 0.3), principal_offset=offset)


def _pixels(height=4, width=6) -> torch.Tensor:
    return torch.arange(height * width, dtype=torch.float64).reshape(height, width)


def test_defaults_change_nothing():
    pixels = _pixels()
    image, geometry = preprocess_xray(pixels, _carm())
    assert image.shape == (1, 1, 4, 6)
    assert torch.equal(image[0, 0], pixels)
    assert geometry == _carm()


def test_crop_removes_the_margins_and_moves_the_principal_point():
    carm = _carm(offset=(0.6, -0.4))
    image, geometry = preprocess_xray(_pixels(), carm, XRayPreprocessing(crop=(1, 2, 0, 1)))
    assert torch.equal(image[0, 0], _pixels()[1:4, 2:5])
    assert (geometry.height, geometry.width, geometry.pixel_spacing) == (3, 3, (0.2, 0.3))
    (cu, cv), (cu0, cv0) = geometry.principal_point, carm.principal_point
    assert (cu, cv) == pytest.approx((cu0 - 2, cv0 - 1))  # same ray, pixel indices shifted by (left, top)


@pytest.mark.parametrize(
    ("flip", "expected"),
    [
        ("none", [[0, 1, 2], [3, 4, 5]]),
        ("horizontal", [[2, 1, 0], [5, 4, 3]]),
        ("vertical", [[3, 4, 5], [0, 1, 2]]),
        ("rot180", [[5, 4, 3], [2, 1, 0]]),
    ],
)
def test_flips(flip, expected):
    image, _ = preprocess_xray(_pixels(2, 3), None, XRayPreprocessing(flip=flip))
    assert image[0, 0].tolist() == expected


@pytest.mark.parametrize(("flip", "mirror_u", "mirror_v"), [("horizontal", 1, 0), ("vertical", 0, 1), ("rot180", 1, 1)])
def test_convention_flip_mirrors_an_off_centre_principal_point_with_the_pixels(flip, mirror_u, mirror_v):
    carm = _carm(offset=(0.6, -0.4))  # principal point (4.5, -0.5) on a 4 × 6 detector
    cu, cv = carm.principal_point
    _, geometry = preprocess_xray(_pixels(), carm, XRayPreprocessing(flip=flip))
    expected = (5 - cu if mirror_u else cu, 3 - cv if mirror_v else cv)  # u → W−1−u, v → H−1−v
    assert geometry.principal_point == pytest.approx(expected)
    assert (geometry.height, geometry.width, geometry.pixel_spacing, geometry.sdd) == (4, 6, (0.2, 0.3), 1000.0)


def test_flip_keeps_a_centred_geometry():
    for flip in FLIPS:
        assert preprocess_xray(_pixels(), _carm(), XRayPreprocessing(flip=flip))[1] == _carm()


def test_convention_negative_log_with_and_without_i0():
    intensity = torch.tensor([[100.0, 50.0], [25.0, 0.0]])
    image, _ = preprocess_xray(intensity, None, XRayPreprocessing(negative_log=True))  # I0 = max = 100
    floor = -math.log(INTENSITY_FLOOR)  # a zero pixel is clamped to INTENSITY_FLOOR · I0
    torch.testing.assert_close(image[0, 0], torch.tensor([[0.0, math.log(2)], [math.log(4), floor]]))
    image, _ = preprocess_xray(intensity, None, XRayPreprocessing(negative_log=True, i0=200.0))
    torch.testing.assert_close(image[0, 0], torch.tensor([[math.log(2), math.log(4)], [math.log(8), floor]]))
    brighter, _ = preprocess_xray(torch.tensor([[400.0]]), None, XRayPreprocessing(negative_log=True, i0=200.0))
    assert float(brighter) == pytest.approx(-math.log(2))  # brighter than I0: negative


def test_negative_log_needs_a_positive_reference():
    with pytest.raises(ValueError, match="pass i0="):
        preprocess_xray(torch.tensor([[0.0, -1.0]]), None, XRayPreprocessing(negative_log=True))


def test_binning_averages_blocks_and_drops_the_remainder():
    pixels = _pixels(5, 7)
    carm = _carm(5, 7, offset=(0.6, -0.4))
    image, geometry = preprocess_xray(pixels, carm, XRayPreprocessing(binning=2))
    blocks = pixels[:4, :6].reshape(2, 2, 3, 2).mean(dim=(1, 3))
    assert torch.equal(image[0, 0], blocks)
    assert image[0, 0, 0, 0] == (0 + 1 + 7 + 8) / 4
    assert (geometry.height, geometry.width) == (2, 3)
    assert geometry.pixel_spacing == pytest.approx((0.4, 0.6))
    (cu, cv), (cu0, cv0) = geometry.principal_point, carm.principal_point
    assert (cu, cv) == pytest.approx(((cu0 - 0.5) / 2, (cv0 - 0.5) / 2))


def test_minmax_and_zscore():
    pixels = torch.tensor([[1.0, 3.0], [5.0, 9.0]])
    image, _ = preprocess_xray(pixels, None, XRayPreprocessing(normalize="minmax"))
    assert image[0, 0].tolist() == [[0.0, 0.25], [0.5, 1.0]]
    image, _ = preprocess_xray(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), None, XRayPreprocessing(normalize="zscore"))
    std = math.sqrt(1.25)  # population standard deviation of 1, 2, 3, 4
    torch.testing.assert_close(image[0, 0], torch.tensor([[-1.5, -0.5], [0.5, 1.5]]) / std)


@pytest.mark.parametrize("normalize", ["minmax", "zscore"])
def test_constant_images_cannot_be_normalised(normalize):
    with pytest.raises(ValueError, match="constant"):
        preprocess_xray(torch.full((3, 3), 2.0), None, XRayPreprocessing(normalize=normalize))


def test_steps_run_in_the_documented_order():
    pixels = torch.rand(6, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 90 + 10
    options = XRayPreprocessing(
        crop=(1, 0, 1, 1), flip="horizontal", negative_log=True, i0=120.0, binning=2, normalize="minmax"
    )
    image, _ = preprocess_xray(pixels, None, options)
    step = pixels[1:5, 0:8].flip(-1)  # crop, flip
    step = -torch.log(step / 120.0)  # −log
    step = step.reshape(2, 2, 4, 2).mean(dim=(1, 3))  # binning
    step = (step - step.min()) / (step.max() - step.min())  # normalise
    torch.testing.assert_close(image[0, 0], step)
    # the order matters: the log of block means is not the mean of the logs
    other = -torch.log(pixels[1:5, 0:8].flip(-1).reshape(2, 2, 4, 2).mean(dim=(1, 3)) / 120.0)
    other = (other - other.min()) / (other.max() - other.min())
    assert not torch.allclose(image[0, 0], other)


def test_integer_pixels_become_float64_and_float32_stays():
    assert preprocess_xray(torch.ones(2, 2, dtype=torch.int32), None)[0].dtype == torch.float64
    assert preprocess_xray(torch.ones(2, 2, dtype=torch.float32), None)[0].dtype == torch.float32


def test_geometry_must_describe_the_whole_image():
    with pytest.raises(DetectorSizeError, match=r"4×6 detector but the image has 4×5 pixels") as caught:
        preprocess_xray(_pixels(4, 5), _carm(4, 6))
    assert (caught.value.detector, caught.value.image) == ((4, 6), (4, 5))


def test_crop_and_binning_must_leave_pixels():
    with pytest.raises(ValueError, match="leaves no pixel"):
        preprocess_xray(_pixels(), None, XRayPreprocessing(crop=(2, 0, 2, 0)))
    with pytest.raises(ValueError, match=r"binning factor 4 exceeds the image size 3×6"):
        preprocess_xray(_pixels(), None, XRayPreprocessing(crop=(1, 0, 0, 0), binning=4))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"crop": (1, 2, 3)}, "crop: expected four non-negative ints"),
        ({"crop": (-1, 0, 0, 0)}, "crop: expected four non-negative ints"),
        ({"crop": (1.5, 0, 0, 0)}, "crop: expected four non-negative ints"),
        ({"flip": "diagonal"}, "flip: expected one of none, horizontal, vertical, rot180"),
        ({"negative_log": "yes"}, "negative_log: expected True or False"),
        ({"negative_log": True, "i0": 0.0}, "i0: expected a finite value > 0"),
        ({"negative_log": True, "i0": -3.0}, "i0: expected a finite value > 0"),
        ({"negative_log": True, "i0": math.nan}, "i0: expected a finite value > 0"),
        ({"i0": 100.0}, "i0: applies only with negative_log=True"),
        ({"binning": 0}, "binning: expected a positive int"),
        ({"binning": 2.0}, "binning: expected a positive int"),
        ({"normalize": "l2"}, "normalize: expected one of none, minmax, zscore"),
    ],
)
def test_options_are_validated(fields, message):
    with pytest.raises(ValueError, match=message):
        XRayPreprocessing(**fields)


def test_crop_given_as_a_list_is_stored_as_a_tuple():
    assert XRayPreprocessing(crop=[1, 2, 3, 4]).crop == (1, 2, 3, 4)


def test_wrong_pixel_shapes_are_refused():
    with pytest.raises(ValueError, match=r"pixels: expected shape \(H, W\)"):
        preprocess_xray(torch.zeros(1, 4, 6), None)
    with pytest.raises(ValueError, match="finite"):
        preprocess_xray(torch.tensor([[1.0, math.inf]]), None)


# ------------------------------------------------------------------------------ working resolution
def test_fit_to_geometry_bins_image_and_geometry_alike():
    carm = ConeBeam(sdd=1000.0, height=100, width=60, pixel_spacing=(0.2, 0.2), principal_offset=(1.0, 2.0))
    image = torch.rand(1, 1, 100, 60, dtype=torch.float64)
    binned, geometry = fit_to_geometry(image, carm, 25)  # 100 / 25 = factor 4
    assert binned.shape == (1, 1, 25, 15)
    assert geometry == carm.downsample(4)
    torch.testing.assert_close(binned[0, 0, 0, 0], image[0, 0, :4, :4].mean())


def test_fit_to_geometry_rounds_the_factor_and_keeps_small_images():
    carm = ConeBeam(sdd=1000.0, height=1000, width=700, pixel_spacing=(0.2, 0.2))
    binned, geometry = fit_to_geometry(torch.zeros(1, 1, 1000, 700), carm, 128)  # 7.8 → 8
    assert binned.shape == (1, 1, 125, 87)
    assert (geometry.height, geometry.width) == (125, 87)
    small = torch.ones(1, 1, 100, 60)
    same, geometry = fit_to_geometry(small, _carm(100, 60), 500)
    assert same is small
    assert geometry == _carm(100, 60)


def test_fit_to_geometry_checks_its_inputs():
    with pytest.raises(ValueError, match=r"4×6 detector but the image has 4×5 pixels"):
        fit_to_geometry(torch.zeros(1, 1, 4, 5), _carm(), 2)
    with pytest.raises(ValueError, match="positive int target_size"):
        fit_to_geometry(torch.zeros(1, 1, 4, 6), _carm(), 0)
    with pytest.raises(ValueError, match=r"image: expected shape \(B, C, H, W\)"):
        fit_to_geometry(torch.zeros(4, 6), _carm(), 2)
