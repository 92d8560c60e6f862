"""`render` and `DRR`: batching, misses, channels, Beer–Lambert, sparse pixels, chunks, validation."""

import math
from dataclasses import fields

import pytest
import torch
from _devices import backend_on

from xrender.geometry import ConeBeam, euler_to_matrix, get_parameterization, make_pose, perturb, standard_pose
from xrender.render import BACKENDS, DRR, RenderOptions, VolumePyramid, choose_backend, render
from xrender.volume import Volume

F64 = torch.float64
CARM = ConeBeam(sdd=1000.0, height=12, width=10, pixel_spacing=(4.0, 4.0), principal_offset=(2.0, -1.0), sid=600.0)
EULER = get_parameterization("euler", convention="xyz", degrees=True)


def _volume(channels: int = 1, seed: int = 0) -> Volume:
    generator = torch.Generator().manual_seed(seed)
    data = torch.zeros(channels, 10, 9, 8, dtype=F64)
    data[:, 2:8, 1:7, 2:7] = torch.rand(channels, 6, 6, 5, generator=generator, dtype=F64)
    affine = torch.diag(torch.tensor([6.0, 7.0, 5.0, 1.0], dtype=F64))
    affine[:3, 3] = torch.tensor([-21.0, -28.0, -22.5], dtype=F64)
    return Volume(data, affine)


def _poses(volume: Volume, n: int = 3) -> torch.Tensor:
    """AP, then the volume turned and moved about its isocentre (degrees, mm)."""
    motions = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [10.0, -20.0, 5.0, 8.0, -3.0, 30.0], [-15.0, 5.0, 40.0, -10.0, 6.0, -20.0]],
        dtype=F64,
        device=volume.data.device,
    )[:n]
    deltas = make_pose(euler_to_matrix(motions[:, :3], "xyz", degrees=True), motions[:, 3:])
    ap = standard_pose("ap", CARM.sid, volume.isocenter).expand(n, 4, 4)
    return perturb(ap, deltas, volume.isocenter)


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_batch_equals_one_by_one(backend, device):
    backend = backend_on(backend, device)
    volume = _volume().to(device)
    poses = _poses(volume)
    batch = render(volume, CARM, poses, options=RenderOptions(backend=backend))
    assert batch.shape == (3, 1, CARM.height, CARM.width)
    singles = torch.cat([render(volume, CARM, pose, options=RenderOptions(backend=backend)) for pose in poses])
    torch.testing.assert_close(batch, singles)
    assert (batch.flatten(1) > 0).float().mean(1).min() > 0.5  # every view sees the volume


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_rays_that_miss_give_exactly_zero(backend, device):
    backend = backend_on(backend, device)
    volume = _volume().to(device)
    away = standard_pose("ap", CARM.sid, volume.isocenter + torch.tensor([0.0, 0.0, 500.0], dtype=F64, device=device))
    pixels = torch.tensor([[-300.0, 5.0], [5.0, 400.0], [4.5, 5.5]], dtype=F64, device=device)  # off, off, centre
    poses = torch.stack([away, standard_pose("ap", CARM.sid, volume.isocenter)])
    image = render(volume, CARM, poses, pixels=pixels, options=RenderOptions(backend=backend))
    assert torch.isfinite(image).all()
    assert (image[0] == 0).all()
    assert (image[1, :, :2] == 0).all()
    assert (image[1, :, 2] > 0).all()


def test_sparse_pixels_equal_the_same_pixels_of_a_full_render():
    volume = _volume()
    poses = _poses(volume, 2)
    full = render(volume, CARM, poses, options=RenderOptions(backend="grid_sample"))
    pixels = torch.tensor([[0.0, 0.0], [9.0, 11.0], [3.0, 7.0]], dtype=F64)
    shared = render(volume, CARM, poses, pixels=pixels, options=RenderOptions(backend="grid_sample"))
    expected = full[:, :, pixels[:, 1].long(), pixels[:, 0].long()]
    torch.testing.assert_close(shared, expected)
    per_pose = render(
        volume, CARM, poses, pixels=torch.stack([pixels, pixels.flip(0)]), options=RenderOptions(backend="grid_sample")
    )
    torch.testing.assert_close(per_pose[1], expected[1].flip(-1))


def test_channels_render_independently():
    volume = _volume(channels=2)
    poses = _poses(volume, 2)
    both = render(volume, CARM, poses, options=RenderOptions(backend="grid_sample"))
    # the content box of each channel alone differs, which must not change the integrals
    for c in range(2):
        alone = render(
            volume.with_data(volume.data[c : c + 1]),
            CARM,
            poses,
            options=RenderOptions(backend="grid_sample", step_mm=1.0),
        )
        torch.testing.assert_close(
            render(volume, CARM, poses, options=RenderOptions(backend="grid_sample", step_mm=1.0))[:, c : c + 1], alone
        )
    summed = render(
        volume.with_data(volume.data.sum(0, keepdim=True)), CARM, poses, options=RenderOptions(backend="grid_sample")
    )
    torch.testing.assert_close(both.sum(1, keepdim=True), summed)


def test_beer_lambert_is_i0_exp_minus_the_line_integral():
    volume = _volume()
    pose = _poses(volume, 1)
    integral = render(volume, CARM, pose)
    intensity = render(volume, CARM, pose, options=RenderOptions(beer_lambert=True, i0=250.0))
    torch.testing.assert_close(intensity, 250.0 * torch.exp(-integral))


def test_chunked_equals_unchunked_including_gradients():
    volume = _volume()
    params = EULER.from_pose(_poses(volume, 2)).requires_grad_()
    whole = render(volume, CARM, params, parameterization=EULER, options=RenderOptions(backend="grid_sample"))
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), params)
    # a budget below one ray: one pixel (for both poses) per chunk, 120 checkpointed chunks
    chunked = render(
        volume, CARM, params, parameterization=EULER, options=RenderOptions(backend="grid_sample", max_memory_mb=1e-3)
    )
    (grad_chunked,) = torch.autograd.grad(chunked.square().sum(), params)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(grad_chunked, grad_whole)


def test_source_inside_the_volume_integrates_forward_only():
    n, spacing, value = 5, 2.0, 0.25
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=F64))
    affine[:3, 3] = -(n - 1) / 2 * spacing
    cube = Volume(torch.full((1, n, n, n), value, dtype=F64), affine)
    pose = standard_pose("ap", CARM.sid, cube.isocenter)
    pose[:3, 3] = cube.isocenter  # the source at the centre voxel
    cu, cv = CARM.principal_point
    # from the centre (index 2) to the content box's face (index 5): 3 voxels, the last a ramp to 0
    half = render(
        cube,
        CARM,
        pose,
        pixels=torch.tensor([[cu, cv]], dtype=F64),
        options=RenderOptions(n_samples=12, backend="grid_sample"),
    )
    torch.testing.assert_close(half.flatten(), torch.tensor([value * spacing * n / 2], dtype=F64))


def test_parameter_vectors_render_like_their_poses():
    volume = _volume()
    poses = _poses(volume, 2)
    by_params = render(volume, CARM, EULER.from_pose(poses), parameterization=EULER)
    torch.testing.assert_close(by_params, render(volume, CARM, poses))
    by_name = render(volume, CARM, get_parameterization("se3_log").from_pose(poses), parameterization="se3_log")
    torch.testing.assert_close(by_name, by_params)


def test_float32_volume_casts_float64_poses():
    volume = _volume()
    poses = _poses(volume, 1)
    image = render(volume.to(dtype=torch.float32), CARM, poses)
    assert image.dtype == torch.float32
    torch.testing.assert_close(image.double(), render(volume, CARM, poses), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("pose", "kwargs"),
    [
        (torch.full((4, 4), float("nan")), {}),
        (torch.eye(4).index_put_((torch.tensor(0), torch.tensor(3)), torch.tensor(float("inf"))), {}),
        (torch.eye(3), {}),
        (torch.eye(4).expand(2, 2, 4, 4), {}),
        (torch.eye(4), {"pixels": torch.tensor([[float("nan"), 1.0]])}),
        (torch.eye(4).expand(2, 4, 4), {"pixels": torch.zeros(3, 5, 2)}),
        (torch.eye(4), {"step_mm": 1.0, "n_samples": 4}),
        (torch.eye(4), {"step_mm": -1.0}),
        (torch.eye(4), {"level": 99}),
        (torch.eye(4), {"level": "coarse"}),
        (torch.eye(4), {"backend": "nope"}),
        (torch.eye(4), {"max_memory_mb": 0.0}),
        (torch.full((6,), float("nan")), {"parameterization": "euler"}),
    ],
)
def test_invalid_inputs_raise_value_errors(pose, kwargs):
    def build_and_render():  # an invalid option raises already when the options are built
        option_names = {f.name for f in fields(RenderOptions)}
        options = RenderOptions(**{k: v for k, v in kwargs.items() if k in option_names})
        others = {k: v for k, v in kwargs.items() if k not in option_names}
        render(_volume(), CARM, pose.to(F64), options=options, **others)

    with pytest.raises(ValueError):
        build_and_render()


def test_wrong_types_raise_type_errors():
    volume = _volume()
    with pytest.raises(TypeError):
        render(volume.data, CARM, torch.eye(4, dtype=F64))
    with pytest.raises(TypeError):
        render(volume, "prost", torch.eye(4, dtype=F64))


def test_auto_backend_prefers_the_fused_cpu_backend_when_registered():
    expected = "fused-cpu" if "fused-cpu" in BACKENDS else "grid_sample"
    assert type(choose_backend("auto", torch.device("cpu"))) is type(BACKENDS.get(expected))
    assert type(choose_backend("auto", torch.device("meta"))) is type(BACKENDS.get("grid_sample"))


def test_module_renders_like_the_function_and_follows_dtype():
    volume = _volume().to(dtype=torch.float32)
    drr = DRR(volume, CARM, parameterization=EULER, options=RenderOptions(step_mm=2.0, backend="grid_sample"))
    params = EULER.from_pose(_poses(_volume(), 2))
    image = drr(params)
    expected = render(
        volume, CARM, params, parameterization=EULER, options=RenderOptions(step_mm=2.0, backend="grid_sample")
    )
    torch.testing.assert_close(image, expected)
    assert drr.pyramid is drr.pyramid  # cached
    drr.double()
    assert drr.data.dtype == F64
    assert drr.pyramid.volume.data is drr.data  # rebuilt for the new buffers
    assert drr(params).dtype == F64
    cached = drr.pyramid
    with torch.no_grad():
        drr.data.zero_()  # in place: the cached content box is stale and must be rebuilt
    assert drr.pyramid is not cached
    assert (drr(params) == 0).all()
    assert "volume=(1, 10, 9, 8)" in repr(drr)


def test_render_accepts_a_pyramid_and_reuses_its_content_box():
    volume = _volume()
    pyramid = VolumePyramid(volume)
    pose = _poses(volume, 1)
    torch.testing.assert_close(render(pyramid, CARM, pose), render(volume, CARM, pose))
    assert pyramid.content_box(0) is pyramid.content_box(0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"step_mm": 1.0, "n_samples": 4}, "expected exactly one of step_mm and n_samples"),
        ({"step_mm": 0.0}, r"step_mm: expected finite values > 0, got 0.0"),
        ({"n_samples": 0}, "n_samples: expected a positive int, got 0"),
        ({"level": -1}, r"level: expected an int >= 0 or 'auto', got -1"),
        ({"level": True}, r"level: expected an int >= 0 or 'auto', got True"),
        ({"backend": "nope"}, r"unknown render backend 'nope'; available: auto, .*grid_sample"),
        ({"max_memory_mb": math.inf}, r"max_memory_mb: expected finite values > 0, got inf"),
        ({"i0": -1.0}, r"i0: expected finite values > 0, got -1.0"),
    ],
)
def test_render_options_are_checked_when_built(options, match):
    with pytest.raises(ValueError, match=match):
        RenderOptions(**options)


def test_options_of_the_wrong_type_are_refused():
    volume = _volume()
    with pytest.raises(TypeError, match="options: expected a RenderOptions, got dict"):
        render(volume, CARM, torch.eye(4, dtype=F64), options={"step_mm": 1.0})
    with pytest.raises(TypeError, match="options: expected a RenderOptions, got dict"):
        DRR(volume, CARM, options={"step_mm": 1.0})


def test_a_level_above_the_coarsest_is_refused_at_render():
    with pytest.raises(ValueError, match=r"level: expected an int in \[0, 4\] or 'auto', got 99"):
        render(_volume(), CARM, torch.eye(4, dtype=F64), options=RenderOptions(level=99))
