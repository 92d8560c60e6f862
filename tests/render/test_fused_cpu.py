"""The fused CPU backend against a grid_sample reference of the ray-marching contract."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xrender.render.backend import BACKENDS
from xrender.render.fused_cpu import (
    _KERNELS,
    DOUBLE_BACKWARD_MESSAGE,
    FusedCPUBackend,
    _channels_last,
    _forward_cn,
    _forward_jac_cn,
    _geometry,
    fused_march,
)


def reference_march(data, origins, directions, near, far, n_samples, max_samples):
    """The contract written with grid_sample: midpoint rule, trilinear, zero padding."""
    _, D, H, W = data.shape
    dtype = torch.promote_types(data.dtype, origins.dtype)
    k = torch.arange(max_samples, dtype=dtype)
    length = (far - near).clamp(min=0)
    dt = length / n_samples.to(dtype).clamp(min=1)
    t = near[:, None] + (k[None] + 0.5) * dt[:, None]  # (R, K)
    x = origins[:, None, :] + t[..., None] * directions[:, None, :]  # (R, K, 3) index space
    size = torch.tensor([W, H, D], dtype=dtype)
    grid = (2 * x + 1) / size - 1  # align_corners=False: index -0.5 ↔ -1, N - 0.5 ↔ +1
    values = F.grid_sample(data.to(dtype)[None], grid[None, None], padding_mode="zeros", align_corners=False)
    values = values[0, :, 0]  # (C, R, K)
    mask = (k[None] < n_samples[:, None]).to(dtype)
    return ((values * mask).sum(-1) * dt).T


def random_rays(R, shape, dtype, generator, max_samples=24):
    """Rays of every kind: through the volume, missing it, grazing faces, in the padding band, n = 0."""
    D, H, W = shape
    size = torch.tensor([W, H, D], dtype=dtype)
    # Points spread over [-2, N + 1]: some inside, some in the zero band [-1, 0] and [N-1, N], some out.
    origins = torch.rand(R, 3, generator=generator, dtype=dtype) * (size + 3) - 2
    directions = torch.randn(R, 3, generator=generator, dtype=dtype)
    lengths = 0.3 + torch.rand(R, 1, generator=generator, dtype=dtype)
    directions = directions / directions.norm(dim=1, keepdim=True) * lengths
    near = -torch.rand(R, generator=generator, dtype=dtype) * 6
    far = near + torch.rand(R, generator=generator, dtype=dtype) * 18
    n_samples = torch.randint(1, max_samples + 1, (R,), generator=generator)
    n_samples[:8] = 0  # no samples
    far[8:12] = near[8:12] - 1.0  # empty interval
    # Rays far away (miss the volume completely).
    origins[12:20] += 100.0
    # Rays grazing the faces: running along a face plane at index -0.5, -1, N - 1 or exactly 0.
    for r, value in zip(range(20, 28), (-0.5, -1.0, 0.0, -0.99, W - 1.0, W - 0.5, W - 0.01, W - 1.5)):
        origins[r] = torch.tensor([value, (H - 1) / 2, -1.5], dtype=dtype)
        directions[r] = torch.tensor([0.0, 0.0, 0.7], dtype=dtype)
        near[r], far[r] = 0.0, (D + 2) / 0.7
        n_samples[r] = max_samples
    # Axis-aligned rays through the zero band [-1, 0] and [N-1, N] of two axes.
    for r, (a, b) in zip(range(28, 32), ((-0.6, -0.3), (H - 0.7, -0.2), (-0.2, D - 0.6), (H - 0.4, D - 0.3))):
        origins[r] = torch.tensor([-3.0, a, b], dtype=dtype)
        directions[r] = torch.tensor([1.0, 0.0, 0.0], dtype=dtype)
        near[r], far[r] = 0.0, W + 6.0
        n_samples[r] = max_samples
    return origins, directions, near, far, n_samples, max_samples


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_matches_grid_sample_reference(channels, dtype, rtol):
    g = torch.Generator().manual_seed(channels)
    shape = (6, 9, 11)
    data = torch.randn(channels, *shape, generator=g, dtype=dtype) + 1.0
    rays = random_rays(400, shape, dtype, g)
    ours = fused_march(data, *rays)
    as64 = [r.double() if isinstance(r, torch.Tensor) and r.is_floating_point() else r for r in rays]
    reference = reference_march(data.double(), *as64)
    assert ours.shape == (400, channels)
    assert ours.dtype == dtype
    scale = float(reference.abs().max())
    assert torch.allclose(ours.double(), reference, rtol=0, atol=rtol * scale)
    # grid_sample in the input dtype (float32 rounds its sample coordinates) agrees to its precision.
    same_dtype = reference_march(data, *rays)
    assert torch.allclose(ours, same_dtype, rtol=0, atol=rtol * scale)
    assert bool((ours[:12] == 0).all())  # no samples or an empty interval
    assert bool((ours[12:20] == 0).all())  # misses
    assert bool((ours[20:32] != 0).any())  # grazing and padding-band rays see the border voxels


def test_padding_band_is_partial_like_grid_sample():
    """A sample at index -0.5 reads half of voxel 0; at -1 or N it reads nothing."""
    data = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    origins = torch.tensor([[-0.5, 0.0, 0.0], [-1.0, 0.0, 0.0], [4.0, 0.0, 0.0], [3.25, 0.0, 0.0]], dtype=torch.float64)
    directions = torch.tensor([[1.0, 0.0, 0.0]] * 4, dtype=torch.float64)
    near = torch.full((4,), -0.5, dtype=torch.float64)
    far = torch.full((4,), 0.5, dtype=torch.float64)
    n = torch.ones(4, dtype=torch.int64)
    out = fused_march(data, origins, directions, near, far, n, 1)[:, 0]
    # y and z sit on the single voxel's centre, so only x is partial.
    assert out.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.75], abs=1e-15)


def test_golden_constant_volume():
    value = 2.5
    data = torch.full((2, 8, 10, 12), value, dtype=torch.float64)
    data[1] *= -1
    origins = torch.tensor([[1.0, 2.0, 1.0], [5.5, 0.0, 3.25]], dtype=torch.float64)
    directions = torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.5, 0.25]], dtype=torch.float64)  # index units per mm
    near = torch.tensor([0.0, 1.0], dtype=torch.float64)
    far = torch.tensor([5.0, 12.0], dtype=torch.float64)  # both rays stay inside [0, N-1]
    for n in (1, 7, 100):
        samples = torch.tensor([n, n])
        out = fused_march(data, origins, directions, near, far, samples, 100)
        expected = torch.tensor([[value * 5.0, -value * 5.0], [value * 11.0, -value * 11.0]], dtype=torch.float64)
        assert torch.allclose(out, expected, rtol=1e-13, atol=0)


def test_dtype_promotion_and_empty():
    data = torch.rand(1, 3, 3, 3)
    rays = random_rays(40, (3, 3, 3), torch.float64, torch.Generator().manual_seed(3))
    assert fused_march(data, *rays).dtype == torch.float64
    empty = [torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.int64)]
    out = fused_march(data, *empty, 0)
    assert out.shape == (0, 1)


def _tiny_problem(channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    data = torch.randn(channels, 5, 5, 5, generator=g, dtype=dtype)
    origins = torch.rand(6, 3, generator=g, dtype=dtype) * 5 - 0.8
    directions = torch.randn(6, 3, generator=g, dtype=dtype)
    directions = directions / directions.norm(dim=1, keepdim=True) * 0.9
    near = -torch.rand(6, generator=g, dtype=dtype) * 3
    far = near + 2 + torch.rand(6, generator=g, dtype=dtype) * 5
    n_samples = torch.tensor([0, 8, 5, 8, 3, 7])
    return data, origins, directions, near, far, n_samples


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_gradcheck(channels):
    data, origins, directions, near, far, n_samples = _tiny_problem(channels)
    inputs = tuple(t.clone().requires_grad_(True) for t in (data, origins, directions, near, far))

    def march(d, o, e, a, b):
        return fused_march(d, o, e, a, b, n_samples, 8)

    assert torch.autograd.gradcheck(march, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_match_reference_autograd():
    """Many rays and threads: the slab-partitioned volume gradient and the geometry gradients."""
    g = torch.Generator().manual_seed(5)
    shape = (12, 10, 14)
    data = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    rays = list(random_rays(600, shape, torch.float64, g))
    # Off the exact cell faces, where the trilinear gradient is one-sided and grid_sample's own
    # coordinate normalisation may round to either side.
    rays[0][20:28, 0] += 1e-6
    leaves = [data.clone().requires_grad_(True)] + [r.clone().requires_grad_(True) for r in rays[:4]]
    weights = torch.randn(600, 3, generator=g, dtype=torch.float64)
    ours = torch.autograd.grad((fused_march(*leaves, *rays[4:]) * weights).sum(), leaves)
    ref = torch.autograd.grad((reference_march(*leaves, *rays[4:]) * weights).sum(), leaves)
    for name, a, b in zip(("data", "origins", "directions", "near", "far"), ours, ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), name


def test_volume_gradient_only_when_needed():
    data, origins, directions, near, far, n_samples = _tiny_problem(1)
    origins.requires_grad_(True)
    out = fused_march(data, origins, directions, near, far, n_samples, 8)
    (grad,) = torch.autograd.grad(out.sum(), [origins])
    assert grad.shape == origins.shape
    assert data.grad is None


def test_double_backward_raises_clear_error():
    data, origins, directions, near, far, n_samples = _tiny_problem(1)
    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out = fused_march(data, origins + shift, directions, near, far, n_samples, 8)
    (grad,) = torch.autograd.grad(out.sum(), [shift], create_graph=True)  # first order works
    assert torch.isfinite(grad).all()
    with pytest.raises(RuntimeError, match="fused-cpu backend has first-order gradients only"):
        grad.sum().backward()
    assert "backend='grid_sample'" in DOUBLE_BACKWARD_MESSAGE


def test_rejects_non_cpu_tensors():
    data, origins, directions, near, far, n_samples = _tiny_problem(1)
    with pytest.raises(ValueError, match="CPU only"):
        fused_march(data.to("meta"), origins, directions, near, far, n_samples, 8)
    with pytest.raises(ValueError, match="origins is on device meta"):
        fused_march(data, origins.to("meta"), directions, near, far, n_samples, 8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "data": a["data"][0]}, r"data: expected shape \(C, D, H, W\)"),
        (lambda a: {**a, "origins": a["origins"][:, :2]}, r"origins: expected shape \(R, 3\)"),
        (lambda a: {**a, "directions": a["directions"][:3]}, r"directions: expected shape \(6, 3\)"),
        (lambda a: {**a, "near": a["near"][:, None]}, r"near: expected shape \(6,\)"),
        (lambda a: {**a, "far": a["far"][1:]}, r"far: expected shape \(6,\)"),
        (lambda a: {**a, "n_samples": a["n_samples"].double()}, "n_samples: expected an integer tensor"),
        (lambda a: {**a, "n_samples": a["n_samples"] + 1}, r"n_samples: expected values in \[0, max_samples = 8\]"),
        (lambda a: {**a, "n_samples": a["n_samples"] - 1}, r"expected values in \[0, max_samples = 8\], got \[-1"),
        (lambda a: {**a, "data": a["data"].to(torch.int32)}, "data: expected float32 or float64"),
        (lambda a: {**a, "max_samples": -1}, "max_samples: expected an int >= 0"),
    ],
)
def test_rejects_bad_inputs(change, message):
    data, origins, directions, near, far, n_samples = _tiny_problem(1)
    args = {"data": data, "origins": origins, "directions": directions, "near": near, "far": far}
    args |= {"n_samples": n_samples, "max_samples": 8}
    with pytest.raises(ValueError, match=message):
        fused_march(**change(args))


def test_registered_backend_and_threads_restored():
    backend = BACKENDS.get("fused-cpu")
    assert isinstance(backend, FusedCPUBackend)
    assert backend.supports_double_backward is False
    data, origins, directions, near, far, n_samples = _tiny_problem(1)
    before_numba, before_torch = numba.get_num_threads(), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = backend.march(data, origins, directions, near, far, n_samples, 8)
        assert numba.get_num_threads() == before_numba
    finally:
        torch.set_num_threads(before_torch)
    assert torch.equal(one, backend.march(data, origins, directions, near, far, n_samples, 8))


def test_no_grad_and_float32_paths_agree_with_grad_path():
    data, origins, directions, near, far, n_samples = _tiny_problem(1, seed=3)
    leaves = [t.clone().requires_grad_(True) for t in (data, origins, directions, near, far)]
    with_graph = fused_march(*leaves, n_samples, 8)
    with torch.no_grad():
        without = fused_march(*leaves, n_samples, 8)
    assert with_graph.grad_fn is not None
    assert without.grad_fn is None
    assert torch.equal(with_graph.detach(), without)
    # float32: same values and gradients to float32 precision.
    leaves32 = [t.detach().float().requires_grad_(True) for t in leaves]
    out32 = fused_march(*leaves32, n_samples, 8)
    grads64 = torch.autograd.grad(with_graph.sum(), leaves)
    grads32 = torch.autograd.grad(out32.sum(), leaves32)
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), with_graph.detach(), rtol=1e-5, atol=1e-5)
    for g32, g64 in zip(grads32, grads64):
        assert g32.dtype == torch.float32
        assert torch.allclose(g32.double(), g64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", sorted(_KERNELS))
def test_specialised_kernels_match_the_general_one(channels, dtype):
    """Each channel count with its own kernels gives `_forward_cn`'s integrals and `_forward_jac_cn`'s Jacobians,
    up to the order of the sums, including rays through the last voxel (the three-channel kernels' last pair read)."""
    g = torch.Generator().manual_seed(11)
    shape = (7, 8, 9)
    data = torch.randn(channels, *shape, generator=g, dtype=torch.float64).to(dtype)
    rays = random_rays(300, shape, torch.float64, g)
    corner = torch.tensor([[7.7, 6.6, 5.5]], dtype=torch.float64)  # just inside (W, H, D) - 1: reads the last voxel
    direction = torch.tensor([[-0.3, -0.2, -0.1]], dtype=torch.float64)
    rays = (
        torch.cat([rays[0], corner]),
        torch.cat([rays[1], direction]),
        torch.cat([rays[2], torch.zeros(1, dtype=torch.float64)]),
        torch.cat([rays[3], torch.full((1,), 30.0, dtype=torch.float64)]),
        torch.cat([rays[4], torch.tensor([64])]),
    )
    R = rays[0].shape[0]
    vol = _channels_last(data)
    geo = _geometry(*rays)
    kernels = _KERNELS[channels]
    assert kernels.forward is not _forward_cn
    reads = kernels.reads(vol)
    outputs = {}
    for name, kernel, arrays, jac in (
        ("special", kernels.forward, reads, None),
        ("general", _forward_cn, (vol,), None),
        ("special-jac", kernels.forward_jac, reads, np.zeros((R, channels, 8))),
        ("general-jac", _forward_jac_cn, (vol,), np.zeros((R, channels, 8))),
    ):
        out = np.full((R, channels), np.nan)
        kernel(*arrays, *geo, out) if jac is None else kernel(*arrays, *geo, out, jac)
        outputs[name] = (out, jac)
    assert np.abs(outputs["general"][0][-1]).min() > 0  # the corner ray crossed the volume
    scale = np.abs(outputs["general"][0]).max()
    np.testing.assert_allclose(outputs["special"][0], outputs["general"][0], rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(outputs["special-jac"][0], outputs["general"][0], rtol=0, atol=1e-13 * scale)
    jac_scale = np.abs(outputs["general-jac"][1]).max()
    np.testing.assert_allclose(outputs["special-jac"][1], outputs["general-jac"][1], rtol=0, atol=1e-13 * jac_scale)


def test_channels_last_memory_is_read_in_place():
    """A volume laid out channels last in memory is marched without a copy, with the same result."""
    g = torch.Generator().manual_seed(12)
    data = torch.randn(3, 5, 6, 7, generator=g, dtype=torch.float64)
    last = data.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
    assert np.shares_memory(_channels_last(last), last.numpy())
    assert not np.shares_memory(_channels_last(data), data.numpy())
    rays = random_rays(100, (5, 6, 7), torch.float64, g)
    assert torch.equal(fused_march(last, *rays), fused_march(data, *rays))
