"""The fused CPU backend and the grid_sample reference agree through `render`: images and gradients."""

import pytest
import torch

from xrender.attenuation import hu_to_mu
from xrender.geometry import get_parameterization, get_preset, perturb, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.render import RenderOptions, render

pytest.importorskip("numba")

EULER = get_parameterization("euler", convention="xyz", degrees=True)


@pytest.fixture(scope="module")
def scene():
    volume = hu_to_mu(pelvis_phantom().to_volume(40))  # float32 μ
    carm = get_preset("prost").downsample(4)  # 32 × 32
    reference = standard_pose("ap", carm.sid, volume.isocenter)
    return volume, carm, reference


def _image(volume, carm, reference, params, backend):
    pose = perturb(reference, EULER.to_pose(params), volume.isocenter)
    return render(volume, carm, pose, options=RenderOptions(backend=backend))


def test_fused_and_grid_sample_images_agree_to_float32_precision(scene):
    volume, carm, reference = scene
    params = torch.tensor([[7.0, -12.0, 20.0, 5.0, -8.0, 15.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    fused = _image(volume, carm, reference, params, "fused-cpu")
    grid = _image(volume, carm, reference, params, "grid_sample")
    assert fused.dtype == torch.float32
    scale = grid.abs().max()
    torch.testing.assert_close(fused / scale, grid / scale, rtol=0, atol=2e-6)


def test_fused_and_grid_sample_pose_gradients_agree(scene):
    volume, carm, reference = scene
    grads = {}
    for backend in ("fused-cpu", "grid_sample"):
        params = torch.tensor([7.0, -12.0, 20.0, 5.0, -8.0, 15.0], requires_grad=True)
        _image(volume, carm, reference, params, backend).square().sum().backward()
        grads[backend] = params.grad
    torch.testing.assert_close(grads["fused-cpu"], grads["grid_sample"], rtol=1e-3, atol=1e-3)


def test_fused_and_grid_sample_volume_gradients_agree(scene):
    volume, carm, reference = scene
    grads = {}
    for backend in ("fused-cpu", "grid_sample"):
        data = volume.data.clone().requires_grad_()
        params = torch.tensor([3.0, 4.0, -5.0, 0.0, 0.0, 0.0])
        _image(volume.with_data(data), carm, reference, params, backend).sum().backward()
        grads[backend] = data.grad
    scale = grads["grid_sample"].abs().max()
    torch.testing.assert_close(grads["fused-cpu"] / scale, grads["grid_sample"] / scale, rtol=0, atol=1e-5)
