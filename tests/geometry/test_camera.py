"""Cone-beam geometry: intrinsics, projection, rays; conventions pinned."""

import math

import pytest
import torch

from xrender.geometry.camera import (
    ConeBeam,
    available_presets,
    camera_to_pixels,
    get_preset,
    intrinsic_matrix,
    inverse_intrinsic_matrix,
    pixel_grid,
    pixel_rays,
    pixels_to_camera,
    project,
    world_to_camera,
)

GEOM = ConeBeam(sdd=1000.0, height=60, width=80, pixel_spacing=(2.0, 1.0), principal_offset=(3.0, -4.0))


def _random_pose(generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = q
    pose[:3, 3] = torch.randn(3, generator=generator, dtype=torch.float64) * 100
    return pose


def test_convention_intrinsics_hartley_zisserman():
    K = GEOM.intrinsics(dtype=torch.float64)
    expected = torch.tensor(
        [[1000.0 / 1.0, 0.0, 39.5 + 3.0 / 1.0], [0.0, 1000.0 / 2.0, 29.5 - 4.0 / 2.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(K, expected)


def test_convention_camera_axes_map_to_pixel_axes():
    K = GEOM.intrinsics(dtype=torch.float64)
    cu, cv = GEOM.principal_point
    points = torch.tensor([[0.0, 0.0, 500.0], [10.0, 0.0, 500.0], [0.0, 10.0, 500.0]], dtype=torch.float64)
    uv = camera_to_pixels(points, K)
    torch.testing.assert_close(uv[0], torch.tensor([cu, cv], dtype=torch.float64))  # principal ray
    assert uv[1, 0] > cu
    assert uv[1, 1] == pytest.approx(cv)
    assert uv[2, 1] > cv
    assert uv[2, 0] == pytest.approx(cu)


def test_convention_top_left_pixel_centre_is_origin():
    geometry = ConeBeam(sdd=1000.0, height=4, width=6, pixel_spacing=(1.0, 1.0))
    # the top-left corner of the detector is at pixel (-0.5, -0.5), i.e. (-W/2, -H/2) mm from the centre
    corner = pixels_to_camera(torch.tensor([[-0.5, -0.5]]), geometry.intrinsics(), torch.tensor(1000.0))
    torch.testing.assert_close(corner, torch.tensor([[-3.0, -2.0, 1000.0]]))
    grid = geometry.pixel_grid()
    assert grid.shape == (4, 6, 2)
    assert grid[0, 0].tolist() == [0.0, 0.0]
    assert grid[0, 5].tolist() == [5.0, 0.0]
    assert grid[3, 0].tolist() == [0.0, 3.0]


def test_convention_pose_maps_camera_to_world():
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])  # the source at (1, 2, 3) in the world
    world = torch.tensor([[1.0, 2.0, 503.0]], dtype=torch.float64)
    torch.testing.assert_close(world_to_camera(world, pose), torch.tensor([[0.0, 0.0, 500.0]], dtype=torch.float64))
    source, _ = pixel_rays(torch.zeros(1, 2, dtype=torch.float64), pose, GEOM.intrinsics(dtype=torch.float64))
    torch.testing.assert_close(source, pose[:3, 3])


def test_rays_and_projection_round_trip():
    g = torch.Generator().manual_seed(0)
    pose = _random_pose(g)
    K = GEOM.intrinsics(dtype=torch.float64)
    pixels = torch.rand(50, 2, generator=g, dtype=torch.float64) * torch.tensor([80.0, 60.0])
    source, directions = pixel_rays(pixels, pose, K)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(50, dtype=torch.float64))
    depth = torch.rand(50, 1, generator=g, dtype=torch.float64) * 900 + 50
    torch.testing.assert_close(project(source + depth * directions, pose, K), pixels)


def test_pixels_on_detector_plane_are_sdd_away():
    K = GEOM.intrinsics(dtype=torch.float64)
    points = pixels_to_camera(GEOM.pixel_grid(dtype=torch.float64).reshape(-1, 2), K, torch.tensor(GEOM.sdd))
    assert torch.all(points[:, 2] == GEOM.sdd)
    spacing_u = points.reshape(60, 80, 3)[0, 1, 0] - points.reshape(60, 80, 3)[0, 0, 0]
    spacing_v = points.reshape(60, 80, 3)[1, 0, 1] - points.reshape(60, 80, 3)[0, 0, 1]
    assert float(spacing_u) == pytest.approx(1.0)
    assert float(spacing_v) == pytest.approx(2.0)


@pytest.mark.parametrize("factor", [2, 3, 7])
def test_convention_downsample_maps_pixel_centres(factor):
    g = torch.Generator().manual_seed(factor)
    pose = _random_pose(g)
    small = GEOM.downsample(factor)
    assert (small.height, small.width) == (60 // factor, 80 // factor)
    assert small.pixel_spacing == (2.0 * factor, 1.0 * factor)
    points = pose[:3, 3] + torch.randn(20, 3, generator=g, dtype=torch.float64) * 20
    points = points + 500 * pose[:3, 2]  # in front of the source
    big_uv = project(points, pose, GEOM.intrinsics(dtype=torch.float64))
    small_uv = project(points, pose, small.intrinsics(dtype=torch.float64))
    torch.testing.assert_close(small_uv, (big_uv - (factor - 1) / 2) / factor)


def test_crop_shifts_principal_point():
    cropped = GEOM.crop(5, 7, 1, 2)
    assert (cropped.height, cropped.width) == (54, 71)
    cu, cv = GEOM.principal_point
    assert cropped.principal_point == pytest.approx((cu - 7, cv - 5))


def test_from_intrinsics_round_trip():
    K = GEOM.intrinsics(dtype=torch.float64)
    back = ConeBeam.from_intrinsics(K, 60, 80, (2.0, 1.0))
    assert back.sdd == pytest.approx(GEOM.sdd)
    assert back.principal_offset == pytest.approx(GEOM.principal_offset)


def test_presets():
    assert available_presets() == ["deepfluoro", "prost"]
    deepfluoro = get_preset("deepfluoro")
    assert (deepfluoro.sdd, deepfluoro.height, deepfluoro.width, deepfluoro.pixel_spacing) == (
        1020.0,
        1536,
        1536,
        (0.194, 0.194),
    )
    prost = get_preset("prost")
    assert (prost.height, prost.width, prost.sid) == (128, 128, 620.0)
    assert prost.detector_size_mm[0] == pytest.approx(373.76)
    quarter = deepfluoro.downsample(8)
    assert quarter.height == 192
    assert quarter.pixel_spacing == pytest.approx((1.552, 1.552))
    assert "1020 mm" in deepfluoro.describe()


def test_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(3)
    poses = torch.stack([_random_pose(g) for _ in range(4)]).reshape(2, 2, 4, 4)
    K = GEOM.intrinsics(dtype=torch.float64)
    points = poses[..., None, :3, 3] + 400 * poses[..., None, :3, 2] + torch.randn(2, 2, 5, 3, generator=g).double()
    batched = project(points, poses, K)
    for a in range(2):
        for b in range(2):
            torch.testing.assert_close(batched[a, b], project(points[a, b], poses[a, b], K))


def test_gradcheck_project_and_rays():
    g = torch.Generator().manual_seed(1)
    pose = _random_pose(g).requires_grad_()
    K = GEOM.intrinsics(dtype=torch.float64).requires_grad_()
    points = (pose[:3, 3] + 300 * pose[:3, 2] + torch.randn(4, 3, generator=g).double()).detach().requires_grad_()
    assert torch.autograd.gradcheck(project, (points, pose, K))
    pixels = torch.rand(4, 2, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, T, k: pixel_rays(p, T, k)[1], (pixels, pose, K))


def test_intrinsic_matrix_is_differentiable_in_sdd():
    sdd = torch.tensor(1000.0, dtype=torch.float64, requires_grad=True)
    spacing = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    point = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(intrinsic_matrix, (sdd, spacing, point))


def test_follows_dtype():
    assert GEOM.intrinsics(dtype=torch.float32).dtype == torch.float32
    assert pixel_grid(2, 3, dtype=torch.float64).dtype == torch.float64
    assert pixel_grid(2, 3).dtype == torch.get_default_dtype()
    K = GEOM.intrinsics(dtype=torch.float32)
    assert project(torch.tensor([[0.0, 0.0, 5.0]]), torch.eye(4), K).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sdd": 0.0}, r"ConeBeam.sdd: expected finite values > 0, got 0.0"),
        ({"sdd": -5.0}, "ConeBeam.sdd"),
        ({"sdd": math.inf}, "ConeBeam.sdd"),
        ({"height": 0}, "ConeBeam.height: expected a positive int"),
        ({"width": 2.5}, "ConeBeam.width: expected a positive int"),
        ({"pixel_spacing": (0.0, 1.0)}, "ConeBeam.pixel_spacing"),
        ({"pixel_spacing": (-1.0, 1.0)}, "ConeBeam.pixel_spacing"),
        ({"pixel_spacing": (1.0,)}, r"expected \(row, column\)"),
        ({"principal_offset": (math.nan, 0.0)}, "principal_offset"),
        ({"sid": 0.0}, "ConeBeam.sid"),
    ],
)
def test_bad_geometry_raises(kwargs, match):
    base = {"sdd": 1000.0, "height": 4, "width": 4, "pixel_spacing": (1.0, 1.0)}
    with pytest.raises(ValueError, match=match):
        ConeBeam(**{**base, **kwargs})


def test_bad_inputs_raise():
    K = GEOM.intrinsics()
    with pytest.raises(ValueError, match="unknown C-arm preset 'siemens'; available: deepfluoro, prost"):
        get_preset("siemens")
    with pytest.raises(ValueError, match="in front of the source"):
        camera_to_pixels(torch.tensor([[0.0, 0.0, -1.0]]), K)
    with pytest.raises(ValueError, match="pose: expected finite values"):
        project(torch.zeros(1, 3), torch.full((4, 4), math.nan), K)
    with pytest.raises(ValueError, match=r"points: expected shape \(\*, N, 3\), got \(3,\)"):
        project(torch.zeros(3), torch.eye(4), K)
    with pytest.raises(ValueError, match=r"pose: expected shape \(\*, 4, 4\)"):
        project(torch.zeros(1, 3), torch.eye(3), K)
    with pytest.raises(ValueError, match="positive int factor"):
        GEOM.downsample(0)
    with pytest.raises(ValueError, match="exceeds the detector size"):
        GEOM.downsample(100)
    with pytest.raises(ValueError, match="leave no pixel"):
        GEOM.crop(30, 0, 30, 0)
    with pytest.raises(ValueError, match="disagree"):
        ConeBeam.from_intrinsics(torch.tensor([[1000.0, 0, 5], [0, 900.0, 5], [0, 0, 1]]), 10, 10, (1.0, 1.0))
    with pytest.raises(ValueError, match="zero skew"):
        ConeBeam.from_intrinsics(torch.tensor([[1000.0, 3, 5], [0, 1000.0, 5], [0, 0, 1]]), 10, 10, (1.0, 1.0))


def test_inverse_intrinsics():
    K = GEOM.intrinsics(dtype=torch.float64)
    torch.testing.assert_close(GEOM.inverse_intrinsics(dtype=torch.float64) @ K, torch.eye(3, dtype=torch.float64))
    batch = torch.stack([K, get_preset("prost").intrinsics(dtype=torch.float64)])
    torch.testing.assert_close(inverse_intrinsic_matrix(batch), torch.linalg.inv(batch))
    assert torch.autograd.gradcheck(inverse_intrinsic_matrix, (K.clone().requires_grad_(),))


def test_binned_to_a_size():
    carm = get_preset("prost")
    assert carm.binned_to(32) == carm.downsample(4)
    for size in (48, 0, 129):
        with pytest.raises(ValueError, match="divisor"):
            carm.binned_to(size)
    with pytest.raises(ValueError, match="square"):
        ConeBeam(sdd=1000.0, height=64, width=32, pixel_spacing=(1.0, 1.0)).binned_to(32)
