"""Accuracy of DRRs against exact line integrals: the analytic pelvis phantom, a cube and a ball.

The phantom is voxelised at 192³ (1.77 mm voxels, 2³ sub-samples each) and rendered at the ProST
geometry binned to 64 × 64; the reference is `Phantom.line_integral` of the same attenuation
model along the same rays. The voxelisation itself limits the agreement (partial-volume edges;
the error halves with the voxel size: ~0.9 % at 128³, ~0.6 % at 192³, ~0.4 % at 256³), so the
fine setting's error shows that floor and the default setting must stay within 1 %.
Run with ``-s`` to see the numbers.
"""

import pytest
import torch

from xrender.attenuation import get_attenuation_model, hu_to_mu
from xrender.geometry import ConeBeam, euler_to_matrix, get_preset, make_pose, perturb, pixel_rays, standard_pose
from xrender.phantom import Ellipsoid, Phantom
from xrender.render import BACKENDS, RenderOptions, VolumePyramid, render
from xrender.volume import Volume

F64 = torch.float64
LINEAR = get_attenuation_model("linear")
CARM = get_preset("prost").downsample(2)  # 64 × 64 pixels of 5.84 mm, sdd 1020 mm, sid 620 mm
FINE_STEP_MM = 0.1


@pytest.fixture(scope="module")
def pyramid(pelvis):
    return VolumePyramid(hu_to_mu(pelvis.to_volume(192, supersample=2), LINEAR))


def _poses(isocenter):
    ap = standard_pose("ap", CARM.sid, isocenter.double())
    delta = make_pose(
        euler_to_matrix(torch.tensor([20.0, -30.0, 15.0], dtype=F64), "xyz", degrees=True),
        torch.tensor([10.0, -5.0, 20.0], dtype=F64),
    )
    return {"ap": ap, "oblique": perturb(ap, delta, isocenter.double())}


def _exact(pelvis, pose):
    pixels = CARM.pixel_grid(dtype=F64).reshape(-1, 2)
    source, directions = pixel_rays(pixels, pose, CARM.intrinsics(dtype=F64))
    exact = pelvis.line_integral(source.expand_as(directions), directions, transfer=LINEAR)
    return exact.reshape(CARM.height, CARM.width)


def _relative_l2(image, reference):
    return float((image.double() - reference).norm() / reference.norm())


@pytest.mark.parametrize("backend", BACKENDS.names())
@pytest.mark.parametrize("view", ["ap", "oblique"])
def test_default_setting_is_within_one_percent_of_the_exact_integral(pelvis, pyramid, view, backend):
    pose = _poses(pyramid.volume.isocenter)[view]
    exact = _exact(pelvis, pose)
    default = render(pyramid, CARM, pose, options=RenderOptions(backend=backend))[0, 0]
    fine = render(pyramid, CARM, pose, options=RenderOptions(step_mm=FINE_STEP_MM, backend=backend))[0, 0]
    default_error, fine_error = _relative_l2(default, exact), _relative_l2(fine, exact)
    sampling_error = _relative_l2(default, fine.double())
    step = 0.5 * float(pyramid.volume.spacing.min())
    print(
        f"\n[{backend}, {view}] relative L2 vs exact: default step {step:.3f} mm {default_error:.4%}, "
        f"fine step {FINE_STEP_MM} mm {fine_error:.4%}; default vs fine (sampling alone) {sampling_error:.4%}"
    )
    assert default_error <= 0.01
    assert sampling_error <= 1e-3  # the step is not what limits the accuracy
    assert fine_error <= default_error + 1e-4


def _uniform_cube(n: int, spacing: float, value: float) -> Volume:
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=F64))
    affine[:3, 3] = -(n - 1) / 2 * spacing  # centred on the origin
    return Volume(torch.full((1, n, n, n), value, dtype=F64), affine)


def test_golden_uniform_cube_chord_through_the_centre():
    # the zero-padded trilinear cube ramps over one voxel on each side: its integral along an axis
    # is value × n × spacing exactly, and the midpoint rule is exact when samples split every voxel
    n, spacing, value = 5, 2.0, 0.3
    cube = _uniform_cube(n, spacing, value)
    carm = ConeBeam(sdd=1000.0, height=3, width=3, pixel_spacing=(1.0, 1.0), sid=500.0)
    centre = torch.tensor([[1.0, 1.0]], dtype=F64)  # the principal point
    for view in ("ap", "ll"):
        pose = standard_pose(view, carm.sid, cube.isocenter)
        # content box [-1, n] along the beam: n + 1 voxels, 4 samples each
        chord = render(
            cube, carm, pose, pixels=centre, options=RenderOptions(n_samples=4 * (n + 1), backend="grid_sample")
        )
        torch.testing.assert_close(chord, torch.full((1, 1, 1), value * n * spacing, dtype=F64))


def test_golden_ball_chord_through_the_centre():
    radius, hu = 40.0, 500.0
    ball = Phantom((Ellipsoid(center=(0.0, 0.0, 0.0), semi_axes=(radius,) * 3, hu=hu),), fov_mm=100.0)
    volume = hu_to_mu(ball.to_volume(50, supersample=4), LINEAR)  # 2 mm voxels
    carm = ConeBeam(sdd=1000.0, height=1, width=1, pixel_spacing=(1.0, 1.0), sid=500.0)
    pose = standard_pose("pa", carm.sid, volume.isocenter)
    expected = 2 * radius * float(LINEAR(torch.tensor(hu)))
    chord = render(volume, carm, pose, options=RenderOptions(backend="grid_sample")).flatten()
    assert float(chord) == pytest.approx(expected, rel=2e-3)  # partial-volume rim of a 2 mm grid
