"""Level of detail: the pyramid's geometry and mass, the automatic level, and its cost in accuracy."""

import pytest
import torch

from xrender.attenuation import hu_to_mu
from xrender.geometry import ConeBeam, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.render import RenderOptions, VolumePyramid, auto_level, downsample_volume, render
from xrender.volume import Volume

F64 = torch.float64


def _oblique_volume(shape=(5, 6, 7)) -> Volume:
    generator = torch.Generator().manual_seed(1)
    affine = torch.eye(4, dtype=F64)
    angle = torch.tensor(0.4, dtype=F64)
    rotation = torch.tensor(
        [[angle.cos(), -angle.sin(), 0.0], [angle.sin(), angle.cos(), 0.0], [0.0, 0.0, 1.0]], dtype=F64
    )
    affine[:3, :3] = rotation @ torch.diag(torch.tensor([1.5, 2.0, 3.0], dtype=F64))
    affine[:3, 3] = torch.tensor([10.0, -20.0, 5.0], dtype=F64)
    return Volume(torch.rand(2, *shape, generator=generator, dtype=F64), affine)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_level_voxel_centres_are_the_centres_of_their_blocks(level):
    volume = _oblique_volume()
    coarse = VolumePyramid(volume).level(level)
    factor = 2**level
    torch.testing.assert_close(coarse.spacing, volume.spacing * factor)
    torch.testing.assert_close(coarse.direction, volume.direction)
    first_block = torch.full((3,), (factor - 1) / 2, dtype=F64)  # fine index of the first block's centre
    torch.testing.assert_close(coarse.origin, volume.voxel_to_world(first_block))
    ijk = torch.tensor([1.0, 0.0, 2.0], dtype=F64)
    torch.testing.assert_close(coarse.voxel_to_world(ijk), volume.voxel_to_world(factor * ijk + (factor - 1) / 2))
    torch.testing.assert_close(coarse.isocenter, volume.isocenter)


def test_even_grid_keeps_its_world_centre_and_odd_edges_average_with_zeros():
    volume = _oblique_volume((4, 6, 8))
    torch.testing.assert_close(downsample_volume(volume).center, volume.center)
    odd = _oblique_volume((5, 6, 7))
    coarse = downsample_volume(odd)
    assert coarse.shape == (3, 3, 4)
    # the mass (sum × voxel volume) is conserved: a partial block averages with zero padding
    torch.testing.assert_close(coarse.data.sum((1, 2, 3)) * 8, odd.data.sum((1, 2, 3)))
    torch.testing.assert_close(coarse.data[:, 0, 0, 0], odd.data[:, :2, :2, :2].mean((1, 2, 3)))
    torch.testing.assert_close(coarse.data[:, 2, 0, 3], odd.data[:, 4, :2, 6].sum(-1) / 8)


def test_levels_are_cached_unless_the_data_requires_grad():
    volume = _oblique_volume()
    pyramid = VolumePyramid(volume)
    assert pyramid.level(2) is pyramid.level(2)
    assert pyramid.max_level == 3  # 7 voxels → 4 → 2 → 1
    with pytest.raises(ValueError):
        pyramid.level(4)
    learned = VolumePyramid(volume.with_data(volume.data.clone().requires_grad_()))
    assert learned.level(1) is not learned.level(1)
    learned.level(1).data.sum().backward()
    torch.testing.assert_close(learned.volume.data.grad, torch.full_like(volume.data, 1 / 8))


def test_channels_last_levels_are_cached_copies_of_multi_channel_levels():
    volume = _oblique_volume()
    pyramid = VolumePyramid(volume)
    for level in (0, 2):
        last = pyramid.level(level, channels_last=True)
        assert last is pyramid.level(level, channels_last=True)
        assert last.data.permute(1, 2, 3, 0).is_contiguous()
        assert torch.equal(last.data, pyramid.level(level).data)
        assert torch.equal(last.affine, pyramid.level(level).affine)
    one = VolumePyramid(volume.with_data(volume.data[:1].contiguous()))
    assert one.level(1, channels_last=True) is one.level(1)  # one channel: already channels last
    learned = VolumePyramid(volume.with_data(volume.data.clone().requires_grad_()))
    assert learned.level(0, channels_last=True) is learned.volume  # nothing cached that gradients must reach


@pytest.mark.parametrize("backend", ["fused-cpu", "grid_sample"])
def test_a_volume_changed_in_place_renders_anew(backend):
    """Without a pyramid nothing is cached across renders: in-place changes (torch or numpy) are seen."""
    volume = _oblique_volume()
    camera = ConeBeam(sdd=400.0, height=6, width=5, pixel_spacing=(3.0, 3.0))
    pose = standard_pose("ap", 200.0, volume.isocenter)
    options = RenderOptions(backend=backend, step_mm=0.5, level=0)
    before = render(volume, camera, pose, options=options)
    volume.data.mul_(2.0)
    torch.testing.assert_close(render(volume, camera, pose, options=options), 2 * before)
    volume.data.numpy()[1] = 0.0  # bypasses torch's version counter
    after = render(volume, camera, pose, options=options)
    torch.testing.assert_close(after[:, 0], 2 * before[:, 0])
    assert float(after[:, 1].abs().max()) == 0.0


def test_auto_level_matches_the_pixel_footprint_at_the_isocentre():
    volume = Volume(torch.ones(1, 64, 64, 64), torch.eye(4))  # 1 mm voxels, 6 levels
    pose = standard_pose("ap", 500.0, volume.isocenter)  # sid 500 mm, sdd 1000: footprint = pixel / 2
    for pixel, expected in [(1.9, 0), (3.9, 0), (4.0, 1), (7.9, 1), (8.0, 2), (1000.0, 6)]:
        carm = ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(pixel, pixel + 1.0))
        assert auto_level(volume, carm, pose) == expected, pixel
    behind = standard_pose("pa", 500.0, volume.isocenter - torch.tensor([0.0, 2000.0, 0.0]))  # looks away
    assert auto_level(volume, ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(50.0, 50.0)), behind) == 0
    batch = torch.stack([pose, standard_pose("ap", 100.0, volume.isocenter)])
    assert auto_level(volume, ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(20.0, 20.0)), batch) == 1


def test_auto_level_error_on_the_phantom():
    # 256³ phantom (1.33 mm voxels); 128 × 128 pixels of 4.8 mm: footprint 2.92 mm at the isocentre → level 1.
    # Level 1 is exactly the phantom voxelised at 128³ with 4³ sub-samples, whose own error against the
    # exact integral is ~0.9 % (test_render_accuracy's floor at 2.66 mm): the coarse level may cost that
    # much, so the difference from level 0 must stay below 1 %.
    volume = hu_to_mu(pelvis_phantom().to_volume(256, supersample=2))
    carm = ConeBeam(sdd=1020.0, height=128, width=128, pixel_spacing=(4.8, 4.8), sid=620.0)
    pose = standard_pose("ap", carm.sid, volume.isocenter)
    pyramid = VolumePyramid(volume)
    assert auto_level(volume, carm, pose) == 1
    full = render(pyramid, carm, pose, options=RenderOptions(level=0, backend="grid_sample"))
    auto = render(pyramid, carm, pose, options=RenderOptions(level="auto", backend="grid_sample"))
    error = float((auto - full).norm() / full.norm())
    print(f"\nauto level 1 vs level 0, 128×128 DRR of the 256³ phantom: relative L2 {error:.4%}")
    assert error < 0.01
