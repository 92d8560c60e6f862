"""Scatter kernel superposition, the scintillator's absorption and the whole simulation chain."""

import numpy as np
import pytest
import torch
import xraydb
from torch.autograd import gradcheck

from xrender.geometry import ConeBeam, standard_pose
from xrender.physics import (
    Detector,
    ScatterModel,
    Scintillator,
    Spectrum,
    detect,
    load_spectrum,
    log_transform,
    render_polyenergetic,
    scatter_estimate,
    simulate_xray,
)
from xrender.render import RenderOptions
from xrender.volume import Volume

F64 = torch.float64
CARM = ConeBeam(sdd=1000.0, height=6, width=6, pixel_spacing=(8.0, 8.0), sid=500.0)


def _densities(seed: int = 0) -> Volume:
    generator = torch.Generator().manual_seed(seed)
    data = torch.rand(3, 6, 6, 6, generator=generator, dtype=F64)
    affine = torch.diag(torch.tensor([5.0, 5.0, 5.0, 1.0], dtype=F64))
    affine[:3, 3] = -12.5
    return Volume(data, affine)


# ------------------------------------------------------------------------------------- scatter
def test_scatter_over_a_uniform_slab_is_the_kernel_strength_times_the_primary():
    """Far from the edges a uniform primary T scatters A·T^α·(−ln T)^β·T; a corner gets a quarter."""
    t = torch.full((2, 1, 96, 96), 0.02, dtype=F64)
    model = ScatterModel(amplitude=0.2, alpha=0.5, beta=1.5, sigma_mm=4.0)
    spr = 0.2 * 0.02**0.5 * (-np.log(0.02)) ** 1.5
    s = scatter_estimate(t, (1.0, 1.0), model)
    assert s.shape == t.shape
    assert float(s[0, 0, 48, 48]) == pytest.approx(spr * 0.02, rel=1e-9)
    kernel = np.exp(-0.5 * (np.arange(-95, 96) / 4.0) ** 2)
    corner = (kernel[95:].sum() / kernel.sum()) ** 2  # the field ends at the detector: ~a quarter reaches a corner
    assert float(s[1, 0, 0, 0]) == pytest.approx(spr * 0.02 * corner, rel=1e-9)
    assert float(model.scatter_to_primary(torch.tensor(0.02, dtype=F64))) == pytest.approx(spr, rel=1e-12)


@pytest.mark.parametrize("kvp", [80, 100])
def test_default_scatter_to_primary_ratio_behind_20_cm_of_water_is_about_a_half(kvp):
    spectrum = load_spectrum(kvp)
    mu = np.asarray(xraydb.material_mu("water", spectrum.energies * 1e3, density=1.0))
    signal = spectrum.fluence * spectrum.energies
    transmission = (signal * np.exp(-mu * 20.0)).sum() / signal.sum()
    spr = float(ScatterModel().scatter_to_primary(torch.tensor(transmission, dtype=F64)))
    assert 0.45 < spr < 0.6


def test_convention_scatter_kernel_sigma_is_mm_on_the_detector_and_scatter_is_in_units_of_i0():
    """One dark pixel in an open field: the scatter it sends sums to T·SPR (units of I₀), spread σ mm (σ/2 px)."""
    t = torch.ones(1, 81, 81, dtype=F64)  # −ln 1 = 0: no scatter from open field
    t[0, 40, 40] = 0.1
    model = ScatterModel(amplitude=1.0, sigma_mm=6.0)
    s = scatter_estimate(t, (2.0, 2.0), model)
    strength = 0.1 * float(model.scatter_to_primary(torch.tensor(0.1, dtype=F64)))
    assert float(s.sum()) == pytest.approx(strength, rel=1e-9)
    offsets = (torch.arange(81, dtype=F64) - 40) * 2.0
    variance = float((s[0].sum(1) * offsets**2).sum() / s.sum())
    assert variance == pytest.approx(36.0, rel=1e-3)


def test_scatter_is_batched_and_differentiable():
    t = (0.05 + 0.9 * torch.rand(3, 1, 7, 9, generator=torch.Generator().manual_seed(1), dtype=F64)).requires_grad_()
    model = ScatterModel(sigma_mm=10.0, alpha=0.3)
    one_by_one = torch.cat([scatter_estimate(t[k : k + 1], (3.0, 2.0), model) for k in range(3)])
    torch.testing.assert_close(scatter_estimate(t, (3.0, 2.0), model), one_by_one)
    assert gradcheck(lambda x: scatter_estimate(x, (3.0, 2.0), model), (t,))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amplitude": -0.1}, "amplitude"),
        ({"beta": float("nan")}, "beta"),
        ({"alpha": float("inf")}, "alpha"),
        ({"sigma_mm": 0.0}, "sigma_mm"),
    ],
)
def test_scatter_model_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScatterModel(**kwargs)


def test_scatter_estimate_errors():
    with pytest.raises(ValueError, match="transmission"):
        scatter_estimate(torch.ones(5, dtype=F64), (1.0, 1.0))
    with pytest.raises(ValueError, match="pixel_spacing"):
        scatter_estimate(torch.ones(4, 4, dtype=F64), (1.0,))
    with pytest.raises(ValueError, match="pixel_spacing"):
        scatter_estimate(torch.ones(4, 4, dtype=F64), (1.0, -2.0))


# -------------------------------------------------------------------------------- scintillator
def test_scintillator_absorption_equals_xraydb():
    layer = Scintillator("CsI", thickness_mm=0.6, density=4.51)
    energies = np.array([30.0, 40.0, 60.0, 100.0])
    mu = np.asarray(xraydb.material_mu("CsI", energies * 1e3, density=4.51))
    np.testing.assert_allclose(layer.absorption(energies), 1 - np.exp(-mu * 0.06), rtol=1e-12)
    assert 0.85 < float(layer.absorption(np.array([60.0]))[0]) < 0.9  # 0.6 mm CsI at 60 keV


def test_a_thin_scintillator_hardens_the_detected_spectrum():
    spectrum = load_spectrum(100)
    ideal = spectrum.weights(dtype=F64).numpy() @ spectrum.energies
    thick = spectrum.weights(scintillator=Scintillator(thickness_mm=5.0), dtype=F64).numpy() @ spectrum.energies
    thin = spectrum.weights(scintillator=Scintillator(thickness_mm=0.2), dtype=F64).numpy() @ spectrum.energies
    assert thin < thick < ideal  # a thin layer lets the hard photons through: the detected mean falls
    assert thick == pytest.approx(ideal, rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"thickness_mm": 0.0}, "thickness_mm"), ({"density": -1.0}, "density"), ({"material": "Xq2"}, "material")],
)
def test_scintillator_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Scintillator(**kwargs)


# ---------------------------------------------------------------------------------- the chain
def test_simulate_xray_without_noise_or_scatter_is_minus_log_of_the_primary():
    densities = _densities()
    pose = standard_pose("ap", CARM.sid, densities.isocenter)
    options = RenderOptions(n_samples=24, backend="grid_sample")
    spectrum = Spectrum(np.array([40.0, 60.0]), np.array([1.0, 1.0]))
    image = simulate_xray(densities, CARM, pose, spectrum, Detector(photons=1e3), noise=False, options=options)
    primary = render_polyenergetic(densities, CARM, pose, spectrum, options=options)
    torch.testing.assert_close(image, -torch.log(primary), rtol=1e-12, atol=1e-12)


def test_simulate_xray_chains_scatter_detector_and_log_with_the_same_draws():
    densities = _densities(2)
    pose = standard_pose("ap", CARM.sid, densities.isocenter)
    options = RenderOptions(n_samples=24, backend="grid_sample")
    spectrum, layer, model = load_spectrum(80), Scintillator(), ScatterModel(sigma_mm=20.0)
    detector = Detector(photons=500.0, electronic_sigma=2.0, psf_sigma_px=0.8)
    image = simulate_xray(
        densities, CARM, pose, spectrum, detector, scatter=model, scintillator=layer, options=options,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    primary = render_polyenergetic(densities, CARM, pose, spectrum, scintillator=layer, options=options)
    total = primary + scatter_estimate(primary, CARM.pixel_spacing, model)
    reading = detect(total, detector, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(image, log_transform(reading, 500.0))
    assert (image < -torch.log(primary)).float().mean() > 0.5  # scatter makes paths read shorter


def test_simulate_xray_gradcheck_with_respect_to_the_densities():
    data = torch.rand(3, 4, 4, 4, generator=torch.Generator().manual_seed(4), dtype=F64)  # a cheap Jacobian
    affine = torch.diag(torch.tensor([7.0, 7.0, 7.0, 1.0], dtype=F64))
    affine[:3, 3] = -10.5
    densities = Volume(data, affine)
    pose = standard_pose("ap", CARM.sid, densities.isocenter)
    options = RenderOptions(n_samples=12, backend="grid_sample")
    spectrum = Spectrum(np.array([40.0, 70.0]), np.array([1.0, 2.0]))
    detector = Detector(photons=1e3, psf_sigma_px=0.7)

    def image(data):
        return simulate_xray(
            densities.with_data(data), CARM, pose, spectrum, detector, scatter=ScatterModel(sigma_mm=15.0),
            noise=False, options=options,
        )  # fmt: skip

    assert gradcheck(image, (densities.data.clone().requires_grad_(),))
