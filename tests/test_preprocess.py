"""ProST volume preparation: isotropic resampling, crop/pad, masking, and their composition."""

import math

import pytest
import torch

from xrender import Volume
from xrender.attenuation import HU_AIR
from xrender.preprocess import EmptyMaskError, apply_mask, crop_or_pad, prepare_prost, resample_isotropic


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64
    )


def _volume(shape=(10, 12, 14), spacing=(0.8, 1.1, 2.0), data=None, isocenter=None) -> Volume:
    """An oblique, anisotropic float64 volume whose values are a linear function of world position."""
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = _rotation(0.4) @ torch.diag(torch.tensor(spacing, dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-30.0, 12.0, 45.0])
    if data is None:
        d, h, w = shape
        k, j, i = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (d, h, w)), indexing="ij")
        world = torch.stack([i, j, k], -1) @ affine[:3, :3].T + affine[:3, 3]
        data = (world @ torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64) + 100.0)[None]
    return Volume(data, affine, isocenter=isocenter)


def _world_grid(volume: Volume) -> torch.Tensor:
    """World positions (D, H, W, 3) of every voxel centre."""
    d, h, w = volume.shape
    k, j, i = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (d, h, w)), indexing="ij")
    return volume.voxel_to_world(torch.stack([i, j, k], -1))


def _extent(volume: Volume) -> torch.Tensor:
    return torch.tensor(volume.shape[::-1], dtype=torch.float64) * volume.spacing


# ----------------------------------------------------------------------------- resample_isotropic
def test_resample_defaults_to_the_finest_spacing_and_keeps_centre_extent_direction():
    volume = _volume(isocenter=torch.tensor([1.0, 2.0, 3.0]))
    out = resample_isotropic(volume)
    torch.testing.assert_close(out.spacing, torch.full((3,), 0.8, dtype=torch.float64))
    torch.testing.assert_close(out.center, volume.center, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.direction, volume.direction, atol=1e-12, rtol=0)
    assert bool(((_extent(out) - _extent(volume)).abs() <= 0.4 + 1e-9).all())  # within half an output voxel
    assert out.shape == (25, 16, 14)  # round((10·2.0, 12·1.1, 14·0.8) / 0.8) as (D, H, W); 16.5 rounds to even
    assert torch.equal(out.isocenter, volume.isocenter)
    assert out.data.dtype == torch.float64


def test_resample_reproduces_a_linear_field():
    volume = _volume()
    out = resample_isotropic(volume, 1.3)
    world = _world_grid(out)
    ijk = volume.world_to_voxel(world)
    inside = ((ijk >= 0) & (ijk <= torch.tensor([13.0, 11.0, 9.0], dtype=torch.float64))).all(-1)
    expected = world @ torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64) + 100.0
    assert int(inside.sum()) > 100
    torch.testing.assert_close(out.data[0][inside], expected[inside], atol=1e-4, rtol=0)


def test_resample_nearest_keeps_label_values():
    labels = torch.randint(0, 4, (1, 10, 12, 14)).double()
    out = resample_isotropic(_volume(data=labels), 0.5, interpolator="nearest", default_value=0.0)
    assert set(torch.unique(out.data).tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_resample_rejects_bad_spacing_and_interpolator():
    with pytest.raises(ValueError, match="spacing_mm: expected finite values > 0"):
        resample_isotropic(_volume(), -1.0)
    with pytest.raises(ValueError, match=r"expected interpolator in \['bspline', 'linear', 'nearest'\], got 'cubic'"):
        resample_isotropic(_volume(), interpolator="cubic")


# ----------------------------------------------------------------------------- crop_or_pad
def _assert_kept_voxels_keep_world_positions(volume: Volume, out: Volume, fill: float) -> None:
    """Every output voxel sits exactly on an input voxel with the same value, or is padding."""
    ijk = volume.world_to_voxel(_world_grid(out))
    torch.testing.assert_close(ijk, ijk.round(), atol=1e-9, rtol=0)
    ijk = ijk.round().long()
    size = torch.tensor(volume.shape[::-1])
    inside = ((ijk >= 0) & (ijk < size)).all(-1)
    i, j, k = ijk[inside].T
    assert torch.equal(out.data[0][inside], volume.data[0, k, j, i])
    assert bool((out.data[0][~inside] == fill).all())


@pytest.mark.parametrize("size", [6, 20, (4, 16, 9)], ids=["crop", "pad", "mixed"])
def test_crop_or_pad_keeps_world_positions(size):
    volume = _volume(isocenter=torch.tensor([5.0, 6.0, 7.0]))
    out = crop_or_pad(volume, size, fill=-5.0)
    expected_shape = (size,) * 3 if isinstance(size, int) else size
    assert out.shape == expected_shape
    _assert_kept_voxels_keep_world_positions(volume, out, fill=-5.0)
    assert torch.equal(out.isocenter, volume.isocenter)


def test_crop_or_pad_centres_on_the_volume_centre():
    volume = _volume()
    out = crop_or_pad(volume, (6, 8, 10))  # same parity as (10, 12, 14): centred exactly
    torch.testing.assert_close(out.center, volume.center, atol=1e-9, rtol=0)


def test_crop_or_pad_around_a_world_point():
    volume = _volume()
    target = volume.voxel_to_world(torch.tensor([3.3, 2.0, 6.7], dtype=torch.float64))
    out = crop_or_pad(volume, 5, center_world=target)
    offset = out.world_to_voxel(target) - 2.0  # index 2 is the middle of 5 voxels
    assert bool((offset.abs() <= 0.5).all())
    _assert_kept_voxels_keep_world_positions(volume, out, fill=HU_AIR)


def test_crop_or_pad_is_differentiable():
    data = torch.ones(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    out = crop_or_pad(_volume(data=data), (2, 6, 4))
    out.data.sum().backward()
    assert float(data.grad.sum()) == 2 * 4 * 4


def test_crop_or_pad_rejects_a_centre_outside_the_volume():
    volume = _volume()
    outside = volume.voxel_to_world(torch.tensor([20.0, 2.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="expected center_world inside the volume"):
        crop_or_pad(volume, 8, center_world=outside)


@pytest.mark.parametrize("size", [0, (4, 4), (4, 4, 2.5)])
def test_crop_or_pad_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="expected size as an int >= 1 or three ints"):
        crop_or_pad(_volume(), size)


# ----------------------------------------------------------------------------- apply_mask
def _labels(volume: Volume) -> Volume:
    labels = torch.zeros((1, *volume.shape), dtype=torch.float64)
    labels[0, 2:5, 3:6, 4:8] = 1.0
    labels[0, 6:8, 3:6, 4:8] = 2.0
    return volume.with_data(labels)


def test_apply_mask_keeps_only_the_segmentation():
    volume = _volume()
    out = apply_mask(volume, _labels(volume))
    inside = _labels(volume).data != 0
    assert torch.equal(out.data[inside], volume.data[inside])
    assert bool((out.data[~inside] == HU_AIR).all())
    assert torch.equal(out.affine, volume.affine)


def test_apply_mask_with_selected_labels_and_background():
    volume = _volume()
    out = apply_mask(volume, _labels(volume), labels=[2], background=0.0)
    keep = _labels(volume).data == 2
    assert torch.equal(out.data[keep], volume.data[keep])
    assert bool((out.data[~keep] == 0.0).all())


def test_apply_mask_gradient_flows_to_kept_voxels_only():
    volume = _volume()
    data = volume.data.clone().requires_grad_(True)
    apply_mask(volume.with_data(data), _labels(volume)).data.sum().backward()
    assert torch.equal(data.grad, (_labels(volume).data != 0).double())


def test_apply_mask_rejects_another_shape():
    volume = _volume()
    with pytest.raises(ValueError, match=r"expected mask shape \(D, H, W\) = \(10, 12, 14\).*got \(10, 12, 13\)"):
        apply_mask(volume, _volume(shape=(10, 12, 13)))


def test_apply_mask_rejects_another_affine():
    volume = _volume()
    affine = volume.affine.clone()
    affine[0, 3] += 0.5
    with pytest.raises(ValueError, match=r"expected the mask's affine to match.*got a difference of 0\.5"):
        apply_mask(volume, Volume(_labels(volume).data, affine))


def test_apply_mask_rejects_multichannel_masks():
    volume = _volume()
    with pytest.raises(ValueError, match="expected a one-channel mask, got 2 channels"):
        apply_mask(volume, volume.with_data(torch.ones(2, 10, 12, 14)))


def test_apply_mask_rejects_an_empty_selection():
    volume = _volume()
    with pytest.raises(EmptyMaskError, match=r"selects no voxel with labels=\[7\]; it holds values \[0.0, 1.0, 2.0\]"):
        apply_mask(volume, _labels(volume), labels=[7])
    with pytest.raises(ValueError, match="expected at least one label"):
        apply_mask(volume, _labels(volume), labels=[])


# ----------------------------------------------------------------------------- prepare_prost
def test_prepare_prost_composes_the_steps():
    volume = _volume()
    out = prepare_prost(volume, mask=_labels(volume), labels=[1], size=16)
    assert out.shape == (16, 16, 16)
    torch.testing.assert_close(out.spacing, torch.full((3,), 0.8, dtype=torch.float64))
    step = crop_or_pad(resample_isotropic(volume), 16)
    torch.testing.assert_close(out.affine, step.affine)
    kept = out.data != HU_AIR
    assert 0 < int(kept.sum()) < 16**3
    torch.testing.assert_close(out.data[kept], step.data[kept])


def test_prepare_prost_without_mask():
    volume = _volume()
    out = prepare_prost(volume, size=8, spacing_mm=2.0)
    assert out.shape == (8, 8, 8)
    torch.testing.assert_close(out.spacing, torch.full((3,), 2.0, dtype=torch.float64))
    offset = out.world_to_voxel(volume.center) - 3.5  # within half a voxel of the cube's middle
    assert bool((offset.abs() <= 0.5 + 1e-9).all())


def test_prepare_prost_checks_the_mask_grid_first():
    volume = _volume()
    with pytest.raises(ValueError, match="expected mask shape"):
        prepare_prost(volume, mask=_volume(shape=(4, 4, 4)))


def test_a_ct_without_bone_is_a_no_bone_error():
    from xrender.subject import NoBoneError, volume_subject

    hu = Volume(torch.full((1, 8, 8, 8), -1000.0), torch.eye(4, dtype=torch.float64))
    with pytest.raises(NoBoneError, match=r"soft: no voxel is above the bone threshold of 200 HU") as caught:
        volume_subject("soft", hu, 8, 200.0)
    assert caught.value.value_range == (-1000.0, -1000.0)
    assert volume_subject("soft", hu, 8, None).moving is not None  # no threshold: no masking


def test_a_ct_subject_keeps_its_source_ct_for_realistic_targets():
    """``Subject.hu`` is the CT as given (its own grid, same world frame), not the resampled cube."""
    from xrender.subject import phantom_subject, volume_subject

    data = torch.linspace(-1000.0, 1500.0, 6 * 10 * 12).reshape(1, 6, 10, 12)
    affine = torch.diag(torch.tensor([1.5, 2.0, 2.5, 1.0], dtype=torch.float64))
    hu = Volume(data, affine)
    subject = volume_subject("ct", hu, 8, 200.0)
    assert subject.hu is hu
    assert subject.full.shape != hu.shape
    torch.testing.assert_close(subject.full.isocenter, hu.isocenter.to(subject.full.isocenter))
    phantom = phantom_subject(16, 200.0)
    assert phantom.hu.shape == phantom.full.shape  # the phantom is voxelized once, at the subject's size
