"""Tests of xrender.phantom: primitives, exact line integrals, the pelvis phantom, voxelisation."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np
import pytest
import torch

from xrender.attenuation import HU_AIR, get_attenuation_model
from xrender.phantom import (
    LANDMARK_NAMES,
    PELVIS_FOV_MM,
    PELVIS_HU,
    Ellipsoid,
    EllipticCylinder,
    Phantom,
    pelvis_phantom,
    rotation_from_axes,
)

LINEAR_MU = get_attenuation_model("linear")
F64 = torch.float64


def quadrature(phantom: Phantom, origin, direction, t0: float, t1: float, n: int = 100_000, transfer=None):
    """Midpoint rule of transfer(HU) along one ray, per mm of path."""
    origin = torch.as_tensor(origin, dtype=F64)
    direction = torch.as_tensor(direction, dtype=F64)
    dt = (t1 - t0) / n
    t = t0 + (torch.arange(n, dtype=F64) + 0.5) * dt
    hu = phantom.hu(origin + t[:, None] * direction)
    value = hu + 1000.0 if transfer is None else transfer(hu)
    return float(value.sum() * dt * direction.norm())


def rotated_ellipsoid(op: str = "set", hu: float = 300.0) -> Ellipsoid:
    rot = rotation_from_axes((1.0, 2.0, -0.5), (0.3, -1.0, 2.0))
    return Ellipsoid((10.0, -5.0, 3.0), (40.0, 25.0, 12.0), rot, hu, op=op, name="tilted")


# ------------------------------------------------------------------------------ primitives
def test_sphere_chord_closed_form():
    r, c = 30.0, torch.tensor([5.0, -3.0, 2.0], dtype=F64)
    sphere = Phantom((Ellipsoid(c, (r, r, r), hu=0.0),))  # HU 0: the default transfer gives 1000 / mm
    d = torch.tensor([0.0, 10.0, 25.0, 29.9], dtype=F64)
    origins = c + torch.stack([torch.full_like(d, -100.0), d, torch.zeros_like(d)], -1)
    direction = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    got = sphere.line_integral(origins, direction)
    expected = 1000.0 * 2 * torch.sqrt(r**2 - d**2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-9)
    t_in, t_out, hit = sphere.primitives[0].intersect(origins, direction.expand_as(origins))
    assert bool(hit.all())
    torch.testing.assert_close(t_out - t_in, expected / 1000.0, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close((t_in + t_out) / 2, torch.full_like(d, 100.0), rtol=0, atol=1e-9)


def test_rotated_ellipsoid_matches_quadrature():
    phantom = Phantom((rotated_ellipsoid(),))
    rng = np.random.default_rng(0)
    for _ in range(5):
        target = np.array([10.0, -5.0, 3.0]) + rng.uniform(-10, 10, 3)
        origin = target + 150.0 * rng.normal(size=3) / 1.0
        direction = (target - origin) / np.linalg.norm(target - origin)
        exact = float(phantom.line_integral(torch.tensor(origin), torch.tensor(direction)))
        approx = quadrature(phantom, origin, direction, 0.0, 2 * np.linalg.norm(target - origin))
        assert exact > 0
        assert abs(exact - approx) / exact < 1e-3


def test_clipped_cylinder_matches_quadrature():
    rot = rotation_from_axes((0.0, 1.0, 1.0), (1.0, 0.0, 0.0))
    cyl = EllipticCylinder((0.0, 0.0, 0.0), (20.0, 12.0, 35.0), rot, 500.0, clip=((1.0, 0.0, 0.5, 8.0),))
    phantom = Phantom((cyl,))
    first, axis = rot[:, 0].numpy(), rot[:, 2].numpy()
    rays = [  # (origin, direction): oblique, through the clip plane, and parallel to the axis
        (np.array([-80.0, -5.0, -3.0]), np.array([1.0, 0.1, 0.05])),
        (np.array([0.0, -90.0, 5.0]), np.array([0.1, 1.0, -0.1])),
        (np.array([2.0, 0.0, 0.0]) - 10 * first - 100 * axis, axis),
    ]
    for origin, direction in rays:
        direction = direction / np.linalg.norm(direction)
        exact = float(phantom.line_integral(torch.tensor(origin), torch.tensor(direction)))
        approx = quadrature(phantom, origin, direction, 0.0, 200.0)
        assert exact > 0
        assert abs(exact - approx) / exact < 1e-3
    # the parallel ray runs the full length between the caps (it misses the clip plane)
    origin, direction = rays[2]
    assert float(phantom.line_integral(torch.tensor(origin), torch.tensor(direction))) == pytest.approx(1500 * 70.0)


def test_contains_matches_hu():
    e = rotated_ellipsoid()
    phantom = Phantom((e,))
    points = torch.randn(2000, 3, dtype=F64, generator=torch.Generator().manual_seed(1)) * 30
    inside = e.contains(points)
    assert 0 < int(inside.sum()) < 2000
    assert torch.equal(phantom.hu(points), torch.where(inside, 300.0, HU_AIR).to(F64))


def test_missing_rays_give_exactly_zero():
    phantom = Phantom((rotated_ellipsoid(),))
    origins = torch.tensor([[0.0, 200.0, 0.0], [500.0, 500.0, 400.0], [100.0, 100.0, -300.0]], dtype=F64)
    directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, -1.0]], dtype=F64)
    out = phantom.line_integral(origins, directions)
    assert torch.equal(out, torch.zeros(3, dtype=F64))
    t_in, t_out, hit = phantom.primitives[0].intersect(origins, directions)
    assert not bool(hit.any())
    assert torch.equal(t_in, torch.zeros(3, dtype=F64))
    assert torch.equal(t_out, torch.zeros(3, dtype=F64))
    # a ray pointing away: its line meets the ellipsoid behind the origin (t < 0), the ray does not
    o, d = torch.tensor([0.0, 0.0, -300.0], dtype=F64), torch.tensor([0.0, 0.0, -1.0], dtype=F64)
    t_in, t_out, hit = phantom.primitives[0].intersect(o, d)
    assert bool(hit)
    assert float(t_out) < 0
    assert float(phantom.line_integral(o, d)) == 0.0
    assert float(phantom.line_integral(o, d, near=-math.inf)) > 0


def test_non_unit_directions_give_the_same_mm_integral():
    phantom = Phantom((rotated_ellipsoid(),))
    origins = torch.tensor([[-120.0, 3.0, 1.0], [0.0, -150.0, 0.0]], dtype=F64)
    unit = torch.tensor([[1.0, 0.05, 0.0], [0.1, 1.0, 0.2]], dtype=F64)
    unit = unit / unit.norm(dim=-1, keepdim=True)
    scaled = unit * torch.tensor([[3.7], [0.2]], dtype=F64)
    torch.testing.assert_close(phantom.line_integral(origins, scaled), phantom.line_integral(origins, unit))
    t_in_u, _, _ = phantom.primitives[0].intersect(origins, unit)
    t_in_s, _, _ = phantom.primitives[0].intersect(origins, scaled)
    torch.testing.assert_close(t_in_s * torch.tensor([3.7, 0.2], dtype=F64), t_in_u)  # t counts |direction| units
    # t in [0, 1] spans source -> target when direction = target - source
    target = origins + 300.0 * unit
    torch.testing.assert_close(
        phantom.line_integral(origins, target - origins, far=1.0), phantom.line_integral(origins, unit, far=300.0)
    )


def test_batched_equals_one_by_one(pelvis):
    gen = torch.Generator().manual_seed(2)
    origins = torch.randn(4, 5, 3, dtype=F64, generator=gen) * 20 + torch.tensor([0.0, -400.0, 0.0], dtype=F64)
    directions = torch.tensor([0.0, 1.0, 0.0], dtype=F64) + 0.2 * torch.randn(4, 5, 3, dtype=F64, generator=gen)
    batched = pelvis.line_integral(origins, directions, transfer=LINEAR_MU)
    assert batched.shape == (4, 5)
    single = torch.stack(
        [
            pelvis.line_integral(o, d, transfer=LINEAR_MU)
            for o, d in zip(origins.reshape(-1, 3), directions.reshape(-1, 3))
        ]
    ).reshape(4, 5)
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-12)
    chunked = pelvis.line_integral(origins, directions, transfer=LINEAR_MU, chunk_size=3)
    torch.testing.assert_close(chunked, batched, rtol=1e-12, atol=1e-12)


def test_near_far_and_air_transfer():
    phantom = Phantom((Ellipsoid((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), hu=0.0),))
    o = torch.tensor([-50.0, 0.0, 0.0], dtype=F64)
    d = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    # the ray starts inside the sphere: only [45, 60] counts
    assert float(phantom.line_integral(o, d, near=45.0)) == pytest.approx(15_000.0)
    near = torch.tensor([0.0, 45.0, 55.0], dtype=F64)
    far = torch.tensor([50.0, 100.0, 58.0], dtype=F64)
    torch.testing.assert_close(
        phantom.line_integral(o, d, near=near, far=far), torch.tensor([1e4, 15e3, 3e3], dtype=F64)
    )
    # a transfer that is non-zero in air integrates it over the finite range
    out = phantom.line_integral(o, d, transfer=lambda h: torch.ones_like(h) + (h > -500), near=0.0, far=100.0)
    assert float(out) == pytest.approx(100.0 + 20.0)
    # a ray that misses still integrates the air of a finite range
    miss = phantom.line_integral(o + torch.tensor([0.0, 50.0, 0.0], dtype=F64), d, lambda h: h * 0 + 2.0, far=7.0)
    assert float(miss) == pytest.approx(14.0)


def test_segments_reproduce_integral(pelvis):
    o = torch.tensor([[30.0, -300.0, -30.0], [80.0, -300.0, -30.0]], dtype=F64)
    d = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    t0, t1, hu = pelvis.segments(o, d)
    assert t0.shape == t1.shape == hu.shape
    assert t0.shape[0] == 2
    assert bool((t1 >= t0).all())
    assert bool((t0[:, 1:] >= t0[:, :-1]).all())
    total = ((hu + 1000.0) * (t1 - t0)).sum(-1)
    torch.testing.assert_close(total, pelvis.line_integral(o, d))
    # the ray through the left femoral head meets its cortex and marrow
    assert {PELVIS_HU["cortical_bone"], PELVIS_HU["cancellous_bone"]} <= set(hu[1].tolist())


def test_additive_model():
    outer = Ellipsoid((0.0, 0.0, 0.0), (40.0, 30.0, 20.0), hu=1040.0, op="add")
    inner = rotated_ellipsoid(op="add", hu=-500.0).translated((-10.0, 5.0, -3.0))
    inner = Ellipsoid(inner.center, (15.0, 10.0, 6.0), inner.rotation, -500.0, op="add")
    paint = Ellipsoid((20.0, 0.0, 0.0), (8.0, 8.0, 8.0), hu=100.0)  # 'set' over the sum
    phantom = Phantom((outer, inner, paint))
    pts = torch.tensor([[0.0, 0.0, 0.0], [35.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 0.0, 100.0]], dtype=F64)
    torch.testing.assert_close(phantom.hu(pts), torch.tensor([-460.0, 40.0, 100.0, -1000.0], dtype=F64))
    origin, direction = np.array([-100.0, 1.0, 0.5]), np.array([1.0, 0.02, 0.01])
    exact = float(phantom.line_integral(torch.tensor(origin), torch.tensor(direction)))
    assert abs(exact - quadrature(phantom, origin, direction, 0.0, 200.0)) / exact < 1e-3


def test_line_integral_differentiable():
    r = 30.0
    phantom = Phantom((Ellipsoid((0.0, 0.0, 0.0), (r, r, r), hu=0.0),))
    offset = torch.tensor(12.0, dtype=F64, requires_grad=True)
    origin = torch.stack([torch.tensor(-100.0, dtype=F64), offset, torch.tensor(0.0, dtype=F64)])
    out = phantom.line_integral(origin, torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    out.backward()
    expected = -1000.0 * 2 * 12.0 / math.sqrt(r**2 - 12.0**2)  # d/dd of 1000 · 2 sqrt(r² - d²)
    assert float(offset.grad) == pytest.approx(expected, rel=1e-9)


def test_dtype_follows_input(pelvis):
    o = torch.tensor([[20.0, -300.0, -40.0], [-70.0, -300.0, 10.0]])
    d = torch.tensor([0.05, 1.0, 0.02])
    out32 = pelvis.line_integral(o, d, transfer=LINEAR_MU)
    out64 = pelvis.line_integral(o.double(), d.double(), transfer=LINEAR_MU)
    assert out32.dtype == torch.float32
    assert out64.dtype == F64
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=0)
    assert pelvis.hu(o).dtype == torch.float32


# ------------------------------------------------------------------------------ the pelvis
def test_pelvis_line_integral_matches_quadrature(pelvis):
    rng = np.random.default_rng(3)
    transfers = [None, LINEAR_MU, lambda h: torch.sqrt(h + 1000.0) + 0.001 * torch.clamp(h, min=0) ** 1.5]
    for n in range(20):
        target = rng.uniform([-120, -60, -100], [120, 80, 90])
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        origin = target - 300.0 * direction
        transfer = transfers[n % 3]
        exact = float(pelvis.line_integral(torch.tensor(origin), torch.tensor(direction), transfer, far=600.0))
        approx = quadrature(pelvis, origin, direction, 0.0, 600.0, n=60_000, transfer=transfer)
        assert exact > 0
        assert abs(exact - approx) / exact < 2e-3, (n, exact, approx)


def test_pelvis_hu_values(pelvis):
    hu = PELVIS_HU
    pts = torch.tensor(
        [
            [0.0, 0.0, 200.0],  # above the trunk
            [200.0, 0.0, 0.0],  # beside it
            [0.0, -80.0, 100.0],  # abdominal wall
            [0.0, -105.0, 0.0],  # subcutaneous fat
            [80.0, -30.0, -30.0],  # left femoral head centre: cancellous bone
            [80.0, -30.0, -8.0],  # its cortical shell
            [0.0, 45.0, -30.0],  # rectal gas
        ],
        dtype=F64,
    )
    expected = [HU_AIR, HU_AIR, hu["soft_tissue"], hu["fat"], hu["cancellous_bone"], hu["cortical_bone"], hu["gas"]]
    assert pelvis.hu(pts).tolist() == expected
    grid = torch.linspace(-PELVIS_FOV_MM / 2, PELVIS_FOV_MM / 2, 48, dtype=F64)
    xyz = torch.stack(torch.meshgrid(grid, grid, grid, indexing="ij"), -1)
    values = pelvis.hu(xyz)
    assert float(values.min()) >= HU_AIR
    assert float(values.max()) <= hu["cortical_bone"]
    assert set(values.unique().tolist()) <= set(hu.values())


def test_convention_phantom_lps(pelvis):
    lm = pelvis.landmarks
    assert pelvis.landmark_names == LANDMARK_NAMES
    assert set(LANDMARK_NAMES) == {f"{n}-{s}" for n in ("ASIS", "FH", "GSN", "IOF", "MOF", "SPS", "IPS") for s in "lr"}
    for name in ("FH", "ASIS", "GSN", "IOF", "MOF", "SPS", "IPS"):
        left, right = lm[f"{name}-l"].numpy(), lm[f"{name}-r"].numpy()
        assert left[0] > 0 > right[0], name  # patient left is +x
        np.testing.assert_allclose(left * [-1, 1, 1], right)  # mirror-symmetric
    fh, sps, ips, asis = (lm[f"{n}-l"].numpy() for n in ("FH", "SPS", "IPS", "ASIS"))
    sacrum = np.array(pelvis.primitive("sacrum").center)
    crest = pelvis.primitive("iliac wing l").bounding_box()[1].numpy()
    assert sacrum[1] > fh[1] > sps[1]  # sacrum posterior (+y), symphysis anterior (-y)
    assert sacrum[1] > sps[1] + 50
    assert crest[2] > fh[2] + 80  # iliac crest superior to the femoral head
    assert sps[2] < fh[2]  # symphysis inferior ...
    assert ips[2] < sps[2]
    assert asis[2] > fh[2]  # ASIS superior, anterior, lateral
    assert asis[1] < fh[1]
    assert asis[0] > fh[0]
    assert lm["GSN-l"][1] > fh[1]  # greater sciatic notch posterior
    assert lm["IOF-l"][2] < lm["MOF-l"][2]  # obturator foramen: inferior point below the medial one
    assert lm["MOF-l"][0] < lm["IOF-l"][0]
    # in a voxelisation the left femoral head lies in the high-i half, and is bone
    vol = pelvis.to_volume(64)
    ijk = vol.world_to_voxel(torch.tensor(fh, dtype=torch.float32)).round().long()
    assert int(ijk[0]) > 32
    assert float(vol.data[0, ijk[2], ijk[1], ijk[0]]) >= 200
    assert vol.orientation == "LPS"


def test_landmarks_in_bone_or_on_its_surface(pelvis):
    g = torch.linspace(-3.0, 3.0, 13, dtype=F64)
    ball = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    ball = ball[ball.norm(dim=-1) <= 3.0]
    for name, p in zip(pelvis.landmarks.names, pelvis.landmarks.points):
        if name.startswith("FH"):
            assert float(pelvis.hu(p)) >= PELVIS_HU["cancellous_bone"], name
            continue
        near = pelvis.hu(p + ball)
        assert float(near.max()) == PELVIS_HU["cortical_bone"], name  # bone within 3 mm ...
        assert float(near.min()) <= PELVIS_HU["soft_tissue"], name  # ... and soft tissue too


def test_pelvis_center_and_determinism():
    a, b = pelvis_phantom(), pelvis_phantom()
    assert a.primitives == b.primitives
    assert a.landmarks.names == b.landmarks.names
    assert torch.equal(a.landmarks.points, b.landmarks.points)
    assert a.landmarks.points.dtype == F64
    shifted = pelvis_phantom(center=(10.0, -20.0, 30.0))
    assert shifted.center == (10.0, -20.0, 30.0)
    np.testing.assert_allclose(
        shifted.landmark_array().numpy(), a.landmark_array().numpy() + np.array([10.0, -20.0, 30.0]), atol=1e-12
    )
    o = torch.tensor([5.0, -300.0, -20.0], dtype=F64)
    d = torch.tensor([0.1, 1.0, 0.0], dtype=F64)
    shift = torch.tensor([10.0, -20.0, 30.0], dtype=F64)
    torch.testing.assert_close(shifted.line_integral(o + shift, d), a.line_integral(o, d))
    assert pickle.loads(pickle.dumps(a)).primitives == a.primitives


# ------------------------------------------------------------------------------ voxelisation
def test_to_volume_geometry_and_values(pelvis):
    vol = pelvis.to_volume((20, 24, 28), fov_mm=(280.0, 240.0, 200.0))
    assert vol.data.shape == (1, 20, 24, 28)
    assert vol.data.dtype == torch.float32
    torch.testing.assert_close(vol.spacing, torch.tensor([10.0, 10.0, 10.0]))
    torch.testing.assert_close(vol.center, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(vol.isocenter, torch.zeros(3))
    lo, hi = vol.bounding_box()
    torch.testing.assert_close(hi - lo, torch.tensor([280.0, 240.0, 200.0]))
    D, H, W = vol.shape
    k, j, i = torch.meshgrid(torch.arange(D), torch.arange(H), torch.arange(W), indexing="ij")
    centres = vol.voxel_to_world(torch.stack([i, j, k], -1).float())
    assert torch.equal(vol.data[0], pelvis.hu(centres))
    # explicit spacing, shifted centre, float64
    moved = pelvis.translated((5.0, 0.0, -7.0)).to_volume(16, spacing=2.5, dtype=F64)
    torch.testing.assert_close(moved.spacing, torch.full((3,), 2.5, dtype=F64))
    torch.testing.assert_close(moved.center, torch.tensor([5.0, 0.0, -7.0], dtype=F64))
    default = pelvis.to_volume(8)
    torch.testing.assert_close(default.spacing, torch.full((3,), PELVIS_FOV_MM / 8))


def test_to_volume_supersample_averages_subsamples(pelvis):
    s = 3
    vol = pelvis.to_volume(12, supersample=s, dtype=F64)
    sp = float(vol.spacing[0])
    offsets = ((torch.arange(s, dtype=F64) + 0.5) / s - 0.5) * sp
    sub = torch.stack(torch.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3)
    for ijk in ([6, 6, 6], [8, 5, 4], [2, 6, 9], [0, 0, 0]):
        centre = vol.voxel_to_world(torch.tensor(ijk, dtype=F64))
        expected = pelvis.hu(centre + sub).mean()
        assert float(vol.data[0, ijk[2], ijk[1], ijk[0]]) == pytest.approx(float(expected), abs=1e-9)


def test_to_volume_deterministic_and_fast(pelvis):
    start = time.perf_counter()
    vol = pelvis.to_volume(128)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    vol2 = pelvis_phantom().to_volume(128, supersample=2)
    elapsed2 = time.perf_counter() - start
    print(f"\npelvis_phantom().to_volume(128): {elapsed:.3f} s; supersample=2: {elapsed2:.3f} s")
    assert vol.data.shape == (1, 128, 128, 128)
    assert torch.equal(vol.data, pelvis.to_volume(128).data)
    assert torch.equal(vol2.data, pelvis.to_volume(128, supersample=2).data)
    assert float(vol.data.max()) == PELVIS_HU["cortical_bone"]
    assert float(vol.data.min()) == HU_AIR


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"semi_axes": (0.0, 1.0, 1.0)}, "semi_axes"),
        ({"semi_axes": (1.0, 2.0)}, r"semi_axes: expected shape \(3,\)"),
        ({"center": (0.0, float("nan"), 0.0)}, "center: expected finite"),
        ({"rotation": np.diag([1.0, 1.0, 2.0])}, "proper rotation"),
        ({"rotation": np.diag([1.0, 1.0, -1.0])}, "proper rotation"),
        ({"op": "mul"}, "op: expected 'set' or 'add'"),
        ({"hu": float("inf")}, "hu: expected a finite"),
        ({"clip": ((0.0, 0.0, 0.0, 1.0),)}, "non-zero normal"),
    ],
)
def test_primitive_errors(kwargs, match):
    args = {"center": (0.0, 0.0, 0.0), "semi_axes": (1.0, 2.0, 3.0), **kwargs}
    with pytest.raises(ValueError, match=match):
        Ellipsoid(**args)


def test_ray_errors(pelvis):
    o = torch.zeros(4, 3, dtype=F64)
    d = torch.tensor([0.0, 1.0, 0.0], dtype=F64).expand(4, 3)
    with pytest.raises(ValueError, match=r"origins: expected shape \(\*, 3\)"):
        pelvis.line_integral(torch.zeros(4, 2), d)
    with pytest.raises(ValueError, match="origins: expected finite"):
        pelvis.line_integral(o.clone().fill_(float("nan")), d)
    with pytest.raises(ValueError, match="directions: expected finite"):
        pelvis.line_integral(o, torch.full((4, 3), float("inf"), dtype=F64))
    with pytest.raises(ValueError, match="zero-length direction"):
        pelvis.line_integral(o, torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="zero-length direction"):
        pelvis.primitives[0].intersect(o, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="broadcastable"):
        pelvis.line_integral(o, torch.ones(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="near <= far"):
        pelvis.line_integral(o, d, near=5.0, far=1.0)
    with pytest.raises(ValueError, match="near: expected a number"):
        pelvis.line_integral(o, d, near=float("nan"))
    with pytest.raises(ValueError, match="near, far: expected shapes broadcastable"):
        pelvis.line_integral(o, d, far=torch.ones(3))
    with pytest.raises(ValueError, match=r"transfer: expected transfer\(-1000\) == 0"):
        pelvis.line_integral(o, d, transfer=lambda h: h * 0 + 1.0)
    with pytest.raises(ValueError, match="transfer: expected an elementwise map"):
        pelvis.line_integral(o, d, transfer=lambda h: h.sum(-1), far=1000.0)
    with pytest.raises(ValueError, match="chunk_size"):
        pelvis.line_integral(o, d, chunk_size=0)
    with pytest.raises(ValueError, match=r"points: expected shape \(\*, 3\)"):
        pelvis.hu(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="points: expected finite"):
        pelvis.hu(torch.tensor([0.0, float("nan"), 0.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, "size: expected positive integers"),
        ({"size": 2.5}, "size: expected positive integers"),
        ({"size": (4, 4)}, "size: expected a number or 3 numbers"),
        ({"fov_mm": 0.0}, "fov_mm: expected finite values > 0"),
        ({"spacing": (1.0, -1.0, 1.0)}, "spacing: expected finite values > 0"),
        ({"spacing": 1.0, "fov_mm": 100.0}, "at most one"),
        ({"supersample": 0}, "supersample: expected a positive int"),
        ({"supersample": 1.5}, "supersample: expected a positive int"),
        ({"dtype": torch.int32}, "dtype: expected a floating dtype"),
    ],
)
def test_to_volume_errors(pelvis, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pelvis.to_volume(**{"size": 4, **kwargs})


def test_other_errors(pelvis):
    with pytest.raises(ValueError, match=r"Phantom\.primitives: expected a non-empty"):
        Phantom(())
    with pytest.raises(ValueError, match=r"center: expected shape \(3,\)"):
        pelvis_phantom(center=(1.0, 2.0))
    with pytest.raises(ValueError, match="unknown"):
        pelvis.landmark_array(["FH-l", "nope"])
    with pytest.raises(ValueError, match="not parallel"):
        rotation_from_axes((1.0, 0.0, 0.0), (2.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="thickness"):
        pelvis.primitives[-1].inset(100.0, hu=0.0)
    with pytest.raises(KeyError, match="no primitive named"):
        pelvis.primitive("spleen")
    assert pelvis.landmark_array(["FH-r", "FH-l"]).shape == (2, 3)
