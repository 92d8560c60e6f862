"""Rays for rendering: index-space mapping, slab clipping, content boxes, sample counts."""

import math

import pytest
import torch

from xrender.geometry import get_preset, perturb
from xrender.geometry.se3 import make_pose, se3_exp
from xrender.render.rays import clip_to_box, content_box, ray_tangents, sample_counts, to_index_space, world_rays

F64 = torch.float64
LOWER = torch.tensor([-1.0, -1.0, -1.0], dtype=F64)
UPPER = torch.tensor([4.0, 5.0, 6.0], dtype=F64)


def test_clip_axis_aligned_ray_enters_and_leaves_the_box():
    near, far = clip_to_box(
        torch.tensor([[-11.0, 2.0, 2.0]], dtype=F64), torch.tensor([[1.0, 0.0, 0.0]], dtype=F64), LOWER, UPPER
    )
    torch.testing.assert_close(near, torch.tensor([10.0], dtype=F64))
    torch.testing.assert_close(far, torch.tensor([15.0], dtype=F64))


def test_clip_scaled_direction_measures_t_in_its_units():
    # e = 0.5 index units per mm: the 5-voxel slab takes 10 mm
    near, far = clip_to_box(
        torch.tensor([[2.0, -11.0, 2.0]], dtype=F64), torch.tensor([[0.0, 0.5, 0.0]], dtype=F64), LOWER, UPPER
    )
    torch.testing.assert_close(torch.stack([near, far]), torch.tensor([[20.0], [32.0]], dtype=F64))


def test_clip_misses_and_parallel_rays_give_zero_length_without_nan():
    origins = torch.tensor(
        [
            [-11.0, 9.0, 2.0],  # parallel to x, outside the y slab
            [2.0, 2.0, -20.0],  # parallel to z, inside the other slabs: hits
            [2.0, 2.0, -20.0],  # points away from the box
            [-11.0, -11.0, 2.0],  # diagonal that passes beside the box
            [4.0, 2.0, 2.0],  # origin on the face, parallel to it
        ],
        dtype=F64,
    )
    directions = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64
    )
    near, far = clip_to_box(origins, directions, LOWER, UPPER)
    assert torch.isfinite(near).all()
    assert torch.isfinite(far).all()
    torch.testing.assert_close(far - near, torch.tensor([0.0, 7.0, 0.0, 0.0, 3.0], dtype=F64))
    assert near[0] == far[0] == 0


def test_clip_starts_at_the_source_when_it_is_inside():
    near, far = clip_to_box(
        torch.tensor([[1.0, 1.0, 1.0]], dtype=F64), torch.tensor([[0.0, 0.0, 1.0]], dtype=F64), LOWER, UPPER
    )
    assert near.item() == 0.0  # nothing behind the source
    assert far.item() == pytest.approx(5.0)


def test_clip_gradients_are_finite_for_parallel_rays():
    origins = torch.tensor([[-11.0, 2.0, 2.0]], dtype=F64, requires_grad=True)
    directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64, requires_grad=True)
    near, far = clip_to_box(origins, directions, LOWER, UPPER)
    (far - near).sum().backward()
    assert torch.isfinite(origins.grad).all()
    assert torch.isfinite(directions.grad).all()


def test_to_index_space_inverts_the_affine_and_keeps_mm():
    affine = torch.tensor(
        [[0.0, 2.0, 0.0, 10.0], [-0.5, 0.0, 0.0, -3.0], [0.0, 0.0, 4.0, 7.0], [0.0, 0.0, 0.0, 1.0]], dtype=F64
    )
    ijk = torch.tensor([[1.5, -2.0, 3.0]], dtype=F64)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    step = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64)  # 1 mm along world z = a quarter voxel along k
    o, e = to_index_space(affine, world, step)
    torch.testing.assert_close(o, ijk)
    torch.testing.assert_close(e, torch.tensor([[0.0, 0.0, 0.25]], dtype=F64))


def test_content_box_grows_the_occupied_voxels_by_one():
    data = torch.zeros(2, 6, 7, 8, dtype=F64)
    data[0, 2, 3, 4] = 1.0  # (i, j, k) = (4, 3, 2)
    data[1, 3, 5, 1] = -2.0  # (1, 5, 3): negative values count too
    affine = torch.diag(torch.tensor([2.0, 1.0, 3.0, 1.0], dtype=F64))
    box = content_box(data, affine)
    torch.testing.assert_close(box.lower, torch.tensor([0.0, 2.0, 1.0], dtype=F64))
    torch.testing.assert_close(box.upper, torch.tensor([5.0, 6.0, 4.0], dtype=F64))
    assert box.diameter_mm == pytest.approx(math.sqrt(10.0**2 + 4.0**2 + 9.0**2))


@pytest.mark.parametrize("case", ["empty", "requires_grad"])
def test_content_box_falls_back_to_the_full_grid(case):
    data = torch.zeros(1, 3, 4, 5) if case == "empty" else torch.rand(1, 3, 4, 5).requires_grad_()
    data_box = content_box(data, torch.eye(4))
    torch.testing.assert_close(data_box.lower, torch.tensor([-1.0, -1.0, -1.0]))
    torch.testing.assert_close(data_box.upper, torch.tensor([5.0, 4.0, 3.0]))


def test_content_box_diameter_is_the_longest_diagonal_of_a_sheared_grid():
    affine = torch.eye(4, dtype=F64)
    affine[0, 1] = 1.0  # j also moves along world x
    box = content_box(torch.ones(1, 1, 1, 1, dtype=F64), affine)  # index box [-1, 1]³
    assert box.diameter_mm == pytest.approx(math.sqrt(4.0**2 + 2.0**2 + 2.0**2))


def test_sample_counts_by_step_and_by_count():
    near = torch.tensor([0.0, 1.0, 2.0])
    far = torch.tensor([0.0, 3.5, 2.0 + 1e-3])
    counts, bound = sample_counts(near, far, 10.0, step_mm=1.0)
    assert counts.tolist() == [0, 3, 1]
    assert bound == 10
    counts, bound = sample_counts(near, far, 10.0, n_samples=7)
    assert counts.tolist() == [0, 7, 7]
    assert bound == 7
    counts, _ = sample_counts(torch.zeros(1), torch.full((1,), 10.0 + 1e-5), 10.0, step_mm=1.0)
    assert counts.tolist() == [10]  # rounding past the diameter is clamped to the bound


@pytest.mark.parametrize(
    "kwargs", [{}, {"step_mm": 1.0, "n_samples": 4}, {"step_mm": 0.0}, {"n_samples": 0}, {"n_samples": 2.5}]
)
def test_sample_counts_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        sample_counts(torch.zeros(1), torch.ones(1), 1.0, **kwargs)


def _rays_of(pose, pixels, K, affine, lower, upper):
    source, directions = world_rays(pixels, pose, K)
    origins, directions = to_index_space(affine, source, directions)
    origins = origins.expand_as(directions)
    near, far = clip_to_box(origins, directions, lower, upper)
    return torch.cat([origins, directions, near[..., None], far[..., None]], -1)


@pytest.mark.parametrize("source_inside", [False, True])
def test_ray_tangents_equal_forward_mode_autodiff(source_inside):
    """The closed-form derivatives of (origin, direction, near, far) against forward-mode AD of the ray set-up."""
    import torch.autograd.forward_ad as fwad

    generator = torch.Generator().manual_seed(0)
    carm = get_preset("prost").binned_to(8)
    K = carm.intrinsics(dtype=F64)
    pixels = torch.cat([carm.pixel_grid(dtype=F64).reshape(1, -1, 2), torch.tensor([[[-40.0, 3.0]]], dtype=F64)], 1)
    affine = torch.eye(4, dtype=F64)
    affine[:3, :3] = torch.diag(torch.tensor([2.0, 3.0, 2.5], dtype=F64))
    centre = torch.tensor([0.0, 0.0, 700.0 if not source_inside else 0.0], dtype=F64)
    pose = make_pose(torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64))[None].repeat(2, 1, 1)
    pose = perturb(pose, se3_exp(0.1 * torch.randn(2, 6, generator=generator, dtype=F64)), centre)
    lower, upper = torch.tensor([-40.0, -30.0, 200.0], dtype=F64), torch.tensor([40.0, 30.0, 300.0], dtype=F64)
    if source_inside:  # near clamped at the source for every ray
        lower, upper = torch.full((3,), -50.0, dtype=F64), torch.full((3,), 50.0, dtype=F64)
    tangents = torch.randn(3, 2, 4, 4, generator=generator, dtype=F64)
    (origins, directions, near, far), ours = ray_tangents(pixels, pose, tangents, K, affine, lower, upper)
    assert ours.shape == (2, pixels.shape[1], 8, 3)
    expected_rays = _rays_of(pose, pixels, K, affine, lower, upper)
    torch.testing.assert_close(torch.cat([origins, directions, near[..., None], far[..., None]], -1), expected_rays)
    for p in range(3):
        with fwad.dual_level():
            rays = _rays_of(fwad.make_dual(pose, tangents[p]), pixels, K, affine, lower, upper)
            expected = fwad.unpack_dual(rays).tangent
        torch.testing.assert_close(ours[..., p], expected, rtol=1e-10, atol=1e-10)
    if source_inside:  # near is the source: it does not move
        assert (near == 0).all()
        assert ours[..., 6, :].abs().max() == 0
    else:  # hits, whose ends move, and the pixel far outside the detector, which misses
        assert (far > near).any()
        assert (far == near).any()
        assert ours[..., 6, :].abs().max() > 0
    assert ours[..., 7, :].abs().max() > 0
