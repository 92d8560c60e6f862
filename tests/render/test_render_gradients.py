"""Gradients of DRRs: first and second order with respect to the pose, first order to the volume."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from xrender.geometry import ConeBeam, get_parameterization, standard_pose
from xrender.render import RenderOptions, render
from xrender.volume import Volume

F64 = torch.float64
CARM = ConeBeam(sdd=1000.0, height=4, width=4, pixel_spacing=(8.0, 8.0), sid=500.0)
EULER = get_parameterization("euler", convention="xyz", degrees=True)


def _volume(size: int = 6, device: torch.device | str = "cpu") -> Volume:
    generator = torch.Generator().manual_seed(3)
    data = torch.rand(1, size, size, size, generator=generator, dtype=F64)
    affine = torch.diag(torch.tensor([5.0, 6.0, 4.0, 1.0], dtype=F64))
    affine[:3, 3] = -(size - 1) / 2 * affine.diagonal()[:3]
    return Volume(data, affine).to(device)


def _params(volume: Volume) -> torch.Tensor:
    ap = EULER.from_pose(standard_pose("ap", CARM.sid, volume.isocenter))
    # Euler angles turn the camera about the source: 0.1° moves the view ~1 mm at the isocentre
    offset = torch.tensor([0.4, -0.3, 0.2, 1.5, -3.0, -1.0], dtype=F64, device=ap.device)
    return (ap + offset).requires_grad_()


def _render_params(volume: Volume, **options):
    return lambda params: render(
        volume,
        CARM,
        params,
        parameterization=EULER,
        options=RenderOptions(n_samples=24, backend="grid_sample", **options),
    )


@pytest.mark.parametrize("max_memory_mb", [1024.0, 1e-3])  # one chunk; many checkpointed chunks
def test_gradcheck_with_respect_to_pose_parameters(max_memory_mb, device):
    volume = _volume(device=device)
    assert (_render_params(volume)(_params(volume)) > 0).all()  # every ray crosses the volume
    assert gradcheck(_render_params(volume, max_memory_mb=max_memory_mb), (_params(volume),))


def test_gradcheck_with_respect_to_the_volume(device):
    volume = _volume(device=device)
    pose = EULER.to_pose(_params(volume).detach())

    def from_data(data):
        return render(volume.with_data(data), CARM, pose, options=RenderOptions(n_samples=24, backend="grid_sample"))

    assert gradcheck(from_data, (volume.data.clone().requires_grad_(),))


@pytest.mark.parametrize("max_memory_mb", [1024.0, 1e-3])
def test_gradgradcheck_with_respect_to_pose_parameters(max_memory_mb, device):
    volume = _volume(device=device)
    assert gradgradcheck(_render_params(volume, max_memory_mb=max_memory_mb), (_params(volume),))


def test_step_mode_gradient_is_finite_and_nonzero():
    volume = _volume(8)
    params = _params(volume)
    render(volume, CARM, params, parameterization=EULER, options=RenderOptions(backend="grid_sample")).sum().backward()
    assert torch.isfinite(params.grad).all()
    assert params.grad.abs().sum() > 0
