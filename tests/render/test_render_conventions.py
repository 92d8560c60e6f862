"""The renderer's half-voxel and half-pixel conventions, pinned (``test_convention_*``)."""

import pytest
import torch

from xrender.geometry import ConeBeam, euler_to_matrix, make_pose, perturb, project, standard_pose
from xrender.render import BACKENDS, RenderOptions, render
from xrender.render.rays import world_rays
from xrender.volume import Volume

F64 = torch.float64
# 1 mm pixels at 1000 mm, source 500 mm from the isocentre: magnification 2.
CARM = ConeBeam(sdd=1000.0, height=48, width=64, pixel_spacing=(1.0, 1.0), principal_offset=(3.3, -2.1), sid=500.0)


def _oblique(volume: Volume) -> torch.Tensor:
    """An AP view turned by a few degrees and shifted, so no symmetry hides an offset."""
    ap = standard_pose("ap", CARM.sid, volume.isocenter)
    delta = make_pose(euler_to_matrix(torch.tensor([7.0, -11.0, 5.0], dtype=F64), "xyz", degrees=True), torch.zeros(3))
    return perturb(ap, delta.to(F64), volume.isocenter)


def _centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre ``(u, v)`` of an ``(H, W)`` image, pixels."""
    v, u = torch.meshgrid(
        torch.arange(image.shape[0], dtype=F64), torch.arange(image.shape[1], dtype=F64), indexing="ij"
    )
    return torch.stack([(u * image).sum(), (v * image).sum()]) / image.sum()


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_convention_bright_voxel_lands_where_its_centre_projects(backend):
    # an oblique, anisotropic grid with one bright voxel at (i, j, k) = (5, 2, 4)
    data = torch.zeros(1, 7, 6, 9, dtype=F64)
    data[0, 4, 2, 5] = 1.0
    affine = torch.eye(4, dtype=F64)
    affine[:3, :3] = euler_to_matrix(torch.tensor([0.3, -0.2, 0.1], dtype=F64), "xyz") @ torch.diag(
        torch.tensor([4.0, 5.0, 3.0], dtype=F64)
    )
    affine[:3, 3] = torch.tensor([-20.0, 10.0, -15.0], dtype=F64)
    volume = Volume(data, affine)
    pose = _oblique(volume)
    image = render(volume, CARM, pose, options=RenderOptions(n_samples=400, backend=backend))[0, 0]
    expected = project(
        volume.voxel_to_world(torch.tensor([[5.0, 2.0, 4.0]], dtype=F64)), pose, CARM.intrinsics(dtype=F64)
    )
    # the projected trilinear "tent" is symmetric to within perspective: 0.05 px catches any half-pixel slip
    torch.testing.assert_close(_centroid(image), expected[0], atol=0.05, rtol=0)


def test_convention_principal_ray_through_the_isocentre_hits_the_principal_point():
    isocenter = torch.tensor([12.0, -30.0, 7.0], dtype=F64)
    pose = standard_pose("ll", CARM.sid, isocenter)
    cu, cv = CARM.principal_point
    source, direction = world_rays(torch.tensor([[cu, cv]], dtype=F64), pose, CARM.intrinsics(dtype=F64))
    torch.testing.assert_close(source[0] + CARM.sid * direction[0], isocenter)


def test_convention_off_centre_pixel_ray_goes_through_its_detector_point():
    isocenter = torch.tensor([12.0, -30.0, 7.0], dtype=F64)
    pose = _oblique(Volume(torch.zeros(1, 2, 2, 2, dtype=F64), torch.eye(4, dtype=F64), isocenter))
    cu, cv = CARM.principal_point
    u, v = 5.0, 40.0  # pixel centre (5, 40): 5 − c_u columns and 40 − c_v rows off the principal point
    detector_point = torch.tensor([(u - cu) * 1.0, (v - cv) * 1.0, CARM.sdd], dtype=F64)  # camera frame, mm
    expected = pose[:3, :3] @ detector_point + pose[:3, 3]
    source, direction = world_rays(torch.tensor([[u, v]], dtype=F64), pose, CARM.intrinsics(dtype=F64))
    distance = detector_point.norm()
    torch.testing.assert_close(source[0] + distance * direction[0], expected)


def test_convention_output_is_seen_from_the_source_with_the_head_up():
    # AP: patient left (+x) on the image's right, superior (+z) at the top
    data = torch.zeros(1, 9, 9, 9, dtype=F64)
    data[0, 6, 4, 6] = 1.0  # k = 6 (superior), i = 6 (left)
    affine = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0], dtype=F64))
    affine[:3, 3] = -12.0  # 6 mm left of and above the isocentre: 12 px on the detector
    volume = Volume(data, affine)
    image = render(volume, CARM, standard_pose("ap", CARM.sid, volume.isocenter), options=RenderOptions(n_samples=100))[
        0, 0
    ]
    u, v = _centroid(image)
    cu, cv = CARM.principal_point
    assert u == pytest.approx(cu + 12, abs=0.1)  # right
    assert v == pytest.approx(cv - 12, abs=0.1)  # top
