"""render_jacobian: images and pose Jacobians in one fused march, equal to autograd through grid_sample."""

from __future__ import annotations

import pytest
import torch

from xrender.geometry import get_parameterization, get_preset, perturb, standard_pose
from xrender.geometry.se3 import se3_exp
from xrender.render import GridSampleBackend, RenderOptions, render, render_jacobian
from xrender.render.fused_cpu import fused_march_jacobian
from xrender.similarity.gradient_loss import twist_chart
from xrender.volume import Volume

CARM = get_preset("prost").binned_to(8)


def _volume(channels: int = 2, requires_grad: bool = False) -> Volume:
    generator = torch.Generator().manual_seed(0)
    data = torch.rand(channels, 9, 10, 11, generator=generator, dtype=torch.float64)
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = torch.diag(torch.tensor([12.0, 11.0, 13.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([-60.0, -50.0, -52.0], dtype=torch.float64)
    return Volume(data.requires_grad_(requires_grad), affine)


def _poses(volume: Volume) -> torch.Tensor:
    reference = standard_pose("ap", CARM.sid, volume.isocenter)
    twist = torch.tensor([[0.1, 0.2, -0.1, 5.0, 3.0, -10.0], [0.0, -0.1, 0.2, -4.0, 2.0, 8.0]], dtype=torch.float64)
    return perturb(reference.expand(2, 4, 4), se3_exp(twist), volume.isocenter)


def _autograd_jacobian(volume, chart, params, **options):
    """∂ render / ∂ params by reverse-mode autograd through grid_sample, one pose at a time: ``(B, C, H, W, P)``."""
    full = torch.autograd.functional.jacobian(
        lambda p: render(volume, CARM, chart(p), options=RenderOptions(backend="grid_sample", **options)), params
    )
    return torch.stack([full[b, ..., b, :] for b in range(params.shape[0])])


@pytest.mark.parametrize("sampling", [{}, {"n_samples": 9}])
def test_images_and_jacobian_equal_autograd_through_grid_sample(sampling):
    volume = _volume()
    chart = twist_chart(_poses(volume), volume.isocenter)
    xi = torch.zeros(2, 6, dtype=torch.float64)
    images, jacobian = render_jacobian(volume, CARM, chart, xi, options=RenderOptions(backend="fused-cpu", **sampling))
    reference = render(volume, CARM, chart(xi), options=RenderOptions(backend="grid_sample", **sampling))
    assert images.shape == (2, 2, 8, 8)
    assert jacobian.shape == (2, 2, 8, 8, 6)
    assert torch.allclose(images, reference, rtol=1e-10, atol=1e-10)
    expected = _autograd_jacobian(volume, chart, xi, **sampling)
    assert expected.abs().max() > 1  # a real pose dependence
    assert torch.allclose(jacobian, expected, rtol=1e-9, atol=1e-9)


def test_jacobian_of_any_parameterization_and_of_a_pixel_subset():
    volume = _volume(channels=1)
    euler = get_parameterization("euler", convention="xyz", degrees=True)
    params = euler.from_pose(_poses(volume))
    pixels = torch.tensor([[0.5, 0.5], [3.2, 6.7], [7.5, 2.0]], dtype=torch.float64)
    images, jacobian = render_jacobian(
        volume, CARM, euler.to_pose, params, pixels=pixels, options=RenderOptions(backend="fused-cpu")
    )
    full = torch.autograd.functional.jacobian(
        lambda p: render(volume, CARM, euler.to_pose(p), pixels=pixels, options=RenderOptions(backend="grid_sample")),
        params,
    )
    expected = torch.stack([full[b, ..., b, :] for b in range(2)])
    assert jacobian.shape == (2, 1, 3, 6)
    assert torch.allclose(images, render(volume, CARM, euler.to_pose(params), pixels=pixels), rtol=1e-10)
    assert torch.allclose(jacobian, expected, rtol=1e-9, atol=1e-9)


def test_batched_equals_one_by_one():
    volume = _volume()
    poses = _poses(volume)
    xi = torch.zeros(2, 6, dtype=torch.float64)
    images, jacobian = render_jacobian(volume, CARM, twist_chart(poses, volume.isocenter), xi)
    for b in range(2):
        one = render_jacobian(volume, CARM, twist_chart(poses[b : b + 1], volume.isocenter), xi[:1])
        assert torch.allclose(images[b], one[0][0], rtol=1e-12)
        assert torch.allclose(jacobian[b], one[1][0], rtol=1e-12, atol=1e-12)


def test_volume_gradient_equals_the_double_backward_of_grid_sample():
    """d/dV of <w1, P> + <w2, ∂P/∂ξ>: one scatter pass here, a second derivative of grid_sample there."""
    fused = _volume(requires_grad=True)
    poses = _poses(fused)
    xi = torch.zeros(2, 6, dtype=torch.float64)
    images, jacobian = render_jacobian(
        fused, CARM, twist_chart(poses, fused.isocenter), xi, options=RenderOptions(backend="fused-cpu")
    )
    generator = torch.Generator().manual_seed(1)
    w1 = torch.randn(images.shape, generator=generator, dtype=torch.float64)
    w2 = torch.randn(jacobian.shape, generator=generator, dtype=torch.float64)
    ((images * w1).sum() + (jacobian * w2).sum()).backward()

    reference = _volume(requires_grad=True)
    xi_ref = xi.clone().requires_grad_(True)
    drr = render(
        reference, CARM, twist_chart(poses, reference.isocenter)(xi_ref), options=RenderOptions(backend="grid_sample")
    )
    pushed = sum(
        torch.autograd.grad((drr * w2[..., p]).sum(), xi_ref, create_graph=True)[0][:, p].sum() for p in range(6)
    )
    ((drr * w1).sum() + pushed).backward()
    assert reference.data.grad.abs().max() > 1
    assert torch.allclose(fused.data.grad, reference.data.grad, rtol=1e-9, atol=1e-9)


def test_float32_volume_gives_float32_outputs_close_to_float64():
    volume64 = _volume()
    volume32 = Volume(volume64.data.float(), volume64.affine.float())
    chart64 = twist_chart(_poses(volume64), volume64.isocenter)
    chart32 = twist_chart(_poses(volume64).float(), volume32.isocenter)
    images, jacobian = render_jacobian(volume32, CARM, chart32, torch.zeros(2, 6))
    _expected_images, expected = render_jacobian(volume64, CARM, chart64, torch.zeros(2, 6, dtype=torch.float64))
    assert images.dtype == jacobian.dtype == torch.float32
    assert torch.allclose(jacobian.double(), expected, rtol=1e-4, atol=1e-3 * float(expected.abs().max()))


def test_a_backend_without_jacobian_march_is_refused_with_the_alternatives():
    volume = _volume()
    chart = twist_chart(_poses(volume), volume.isocenter)
    with pytest.raises(ValueError, match=r"fused-cpu.*grid_sample"):
        render_jacobian(
            volume, CARM, chart, torch.zeros(2, 6, dtype=torch.float64), options=RenderOptions(backend="grid_sample")
        )


def test_intensities_are_refused_with_the_reason():
    volume = _volume()
    chart = twist_chart(_poses(volume), volume.isocenter)
    with pytest.raises(ValueError, match="beer_lambert=False"):
        render_jacobian(
            volume, CARM, chart, torch.zeros(2, 6, dtype=torch.float64), options=RenderOptions(beer_lambert=True)
        )


def test_malformed_params_and_poses_are_refused():
    volume = _volume()
    chart = twist_chart(_poses(volume), volume.isocenter)
    with pytest.raises(ValueError, match="params"):
        render_jacobian(volume, CARM, chart, torch.zeros(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="params"):
        render_jacobian(volume, CARM, chart, torch.full((2, 6), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="pose_of"):
        render_jacobian(volume, CARM, lambda p: chart(p)[:1], torch.zeros(2, 6, dtype=torch.float64))
    with pytest.raises(TypeError, match="volume"):
        render_jacobian(volume.data, CARM, chart, torch.zeros(2, 6, dtype=torch.float64))


def _one_ray():
    data = torch.rand(1, 3, 3, 3, dtype=torch.float64)
    origins = torch.zeros(1, 3, dtype=torch.float64)
    directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    near, far = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    return {"data": data, "origins": origins, "directions": directions, "near": near, "far": far}


@pytest.mark.parametrize("name", ["origins", "directions", "near", "far"])
def test_fused_march_jacobian_refuses_rays_that_require_grad(name):
    rays = _one_ray()
    rays[name].requires_grad_(True)
    with pytest.raises(ValueError, match=f"{name} requires grad"):
        fused_march_jacobian(*rays.values(), torch.ones(1, dtype=torch.long), 1)


def test_fused_march_jacobian_refuses_tensors_off_the_cpu():
    rays = _one_ray()
    rays["data"] = rays["data"].to("meta")
    with pytest.raises(ValueError, match="CPU only"):
        fused_march_jacobian(*rays.values(), torch.ones(1, dtype=torch.long), 1)


def test_a_backend_without_a_jacobian_march_says_which_to_use():
    assert not GridSampleBackend.supports_jacobian
    with pytest.raises(NotImplementedError, match="fused-cpu"):
        GridSampleBackend().march_jacobian(*_one_ray().values(), torch.ones(1, dtype=torch.long), 1)


def test_a_pose_map_without_forward_mode_derivatives_is_refused_not_zero():
    """A detach (or inference mode) would make every tangent vanish: an error, not a zero Jacobian."""
    volume = _volume()
    poses = _poses(volume)
    chart = twist_chart(poses, volume.isocenter)
    xi = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="forward-mode"):
        render_jacobian(volume, CARM, lambda p: chart(p).detach(), xi)
    with torch.inference_mode(), pytest.raises(ValueError, match="forward-mode"):
        render_jacobian(volume, CARM, chart, xi)


def test_the_adjoint_cannot_be_differentiated_again():
    volume = _volume(requires_grad=True)
    chart = twist_chart(_poses(volume), volume.isocenter)
    _, jacobian = render_jacobian(volume, CARM, chart, torch.zeros(2, 6, dtype=torch.float64))
    (grad,) = torch.autograd.grad(jacobian.square().sum(), volume.data, create_graph=True)
    with pytest.raises(RuntimeError, match="first-order"):
        grad.sum().backward()


def test_convention_jacobian_parameter_axis_is_last_and_is_the_derivative_along_each_parameter():
    """jacobian[..., p] is the central difference of the images along params[:, p] (twist: ω in rad, v in mm)."""
    volume = _volume(channels=1)
    chart = twist_chart(_poses(volume), volume.isocenter)
    xi = torch.zeros(2, 6, dtype=torch.float64)
    images, jacobian = render_jacobian(volume, CARM, chart, xi, options=RenderOptions(n_samples=9))
    assert jacobian.shape == (*images.shape, 6)
    for p, h in ((0, 1e-6), (5, 1e-4)):  # a rotation (radians) and the depth translation (mm)
        step = torch.zeros_like(xi)
        step[:, p] = h
        plus = render(volume, CARM, chart(step), options=RenderOptions(n_samples=9))
        minus = render(volume, CARM, chart(-step), options=RenderOptions(n_samples=9))
        torch.testing.assert_close(jacobian[..., p], (plus - minus) / (2 * h), rtol=1e-5, atol=1e-6)
