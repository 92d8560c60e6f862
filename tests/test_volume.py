"""The Volume value: geometry, conversions, validation."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from xrender import LPS_FROM_RAS, Volume


def _oblique_image() -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(60, dtype=np.float32).reshape(3, 4, 5))
    image.SetSpacing((1.0, 2.0, 3.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, -1.0))
    return image


def test_convention_voxel_index_order_matches_itk():
    image = _oblique_image()
    volume = Volume.from_sitk(image, dtype=torch.float64)
    assert volume.shape == (3, 4, 5)  # (D, H, W)
    for index in [(0, 0, 0), (4, 3, 2), (1, 2, 0)]:
        expected = torch.tensor(image.TransformIndexToPhysicalPoint(index), dtype=torch.float64)
        got = volume.voxel_to_world(torch.tensor(index, dtype=torch.float64))
        torch.testing.assert_close(got, expected)
        i, j, k = index
        assert volume.data[0, k, j, i] == image[index]


def test_convention_isocenter_defaults_to_volume_center():
    volume = Volume.from_sitk(_oblique_image(), dtype=torch.float64)
    expected = torch.tensor(_oblique_image().TransformContinuousIndexToPhysicalPoint((2.0, 1.5, 1.0)))
    torch.testing.assert_close(volume.isocenter, expected.double())
    torch.testing.assert_close(volume.center, volume.isocenter)


def test_convention_orientation_code_names_where_axes_point():
    identity = Volume(torch.zeros(1, 2, 2, 2), torch.eye(4))
    assert identity.orientation == "LPS"
    ras = Volume(torch.zeros(1, 2, 2, 2), LPS_FROM_RAS.float())
    assert ras.orientation == "RAS"


def test_world_voxel_round_trip_and_spacing():
    volume = Volume.from_sitk(_oblique_image(), dtype=torch.float64)
    torch.testing.assert_close(volume.spacing, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    points = torch.randn(7, 3, dtype=torch.float64) * 10
    torch.testing.assert_close(volume.voxel_to_world(volume.world_to_voxel(points)), points)


def test_bounding_box_covers_half_voxels():
    volume = Volume(torch.zeros(1, 3, 4, 5), torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    lower, upper = volume.bounding_box()
    torch.testing.assert_close(lower, torch.tensor([-1.0, -1.0, -1.0]))
    torch.testing.assert_close(upper, torch.tensor([9.0, 7.0, 5.0]))


def test_sitk_round_trip_keeps_geometry_and_values():
    image = _oblique_image()
    back = Volume.from_sitk(image).to_sitk()
    assert back.GetSpacing() == pytest.approx(image.GetSpacing())
    assert back.GetOrigin() == pytest.approx(image.GetOrigin())
    assert back.GetDirection() == pytest.approx(image.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_multichannel_sitk_round_trip():
    data = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    volume = Volume(data, torch.eye(4))
    image = volume.to_sitk()
    assert image.GetNumberOfComponentsPerPixel() == 2
    torch.testing.assert_close(Volume.from_sitk(image).data, data)


def test_torchio_round_trip_converts_ras():
    volume = Volume.from_sitk(_oblique_image(), dtype=torch.float64)
    image = volume.to_torchio()
    assert tuple(image.shape) == (1, 5, 4, 3)  # torchio: (C, W, H, D)
    back = Volume.from_torchio(image, dtype=torch.float64)
    torch.testing.assert_close(back.affine, volume.affine)
    torch.testing.assert_close(back.data, volume.data)
    # torchio's affine is RAS: x and y negated
    ras = torch.as_tensor(np.asarray(image.affine))
    torch.testing.assert_close(ras[:2], -volume.affine[:2])


def test_to_follows_device_and_dtype():
    volume = Volume(torch.zeros(1, 2, 2, 2), torch.eye(4)).to(dtype=torch.float64)
    assert volume.data.dtype == volume.affine.dtype == volume.isocenter.dtype == torch.float64


def test_with_data_checks_shape():
    volume = Volume(torch.zeros(1, 2, 3, 4), torch.eye(4))
    assert volume.with_data(torch.ones(3, 2, 3, 4)).channels == 3
    with pytest.raises(ValueError, match=r"expected spatial shape \(2, 3, 4\)"):
        volume.with_data(torch.ones(1, 2, 2, 2))


@pytest.mark.parametrize(
    ("data", "affine", "match"),
    [
        (torch.zeros(2, 2, 2), torch.eye(4), r"Volume.data: expected shape \(C, D, H, W\), got \(2, 2, 2\)"),
        (torch.zeros(1, 2, 2, 2), torch.eye(3), r"Volume.affine: expected shape \(4, 4\)"),
        (torch.zeros(1, 0, 2, 2), torch.eye(4), "every dimension >= 1"),
        (torch.zeros(1, 2, 2, 2), torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0])), "invertible"),
        (torch.zeros(1, 2, 2, 2), torch.full((4, 4), float("nan")), "finite"),
        (torch.zeros(1, 2, 2, 2), torch.ones(4, 4), "last row"),
    ],
)
def test_bad_volume_raises(data, affine, match):
    with pytest.raises(ValueError, match=match):
        Volume(data, affine)


def test_bad_isocenter_raises():
    with pytest.raises(ValueError, match="isocenter"):
        Volume(torch.zeros(1, 2, 2, 2), torch.eye(4), isocenter=torch.tensor([0.0, float("inf"), 0.0]))
    with pytest.raises(ValueError, match=r"expected shape \(3\)"):
        Volume(torch.zeros(1, 2, 2, 2), torch.eye(4), isocenter=torch.zeros(2))
