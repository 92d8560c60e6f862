"""xrender.physics: materials, spectra, the polyenergetic model and the detector."""

import json
from importlib import resources

import numpy as np
import pytest
import torch
import xraydb
from torch.autograd import gradcheck

from xrender.attenuation import HU_BONE
from xrender.geometry import ConeBeam, get_parameterization, standard_pose
from xrender.physics import (
    CM_PER_MM,
    MATERIALS,
    SHIPPED_KVP,
    Detector,
    HUDensityCalibration,
    HUThresholds,
    Spectrum,
    decompose_hu,
    decompose_labels,
    detect,
    estimate_i0,
    load_spectrum,
    log_transform,
    mass_attenuation,
    material_weights,
    polyenergetic_transmission,
    render_polyenergetic,
)
from xrender.render import RenderOptions, render
from xrender.volume import Volume

F64 = torch.float64
CARM = ConeBeam(sdd=1000.0, height=4, width=4, pixel_spacing=(8.0, 8.0), sid=500.0)
EULER = get_parameterization("euler", convention="xyz", degrees=True)


def _volume(data: torch.Tensor, spacing: float = 5.0) -> Volume:
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=data.dtype))
    affine[:3, 3] = -(torch.tensor(data.shape[1:][::-1], dtype=data.dtype) - 1) / 2 * spacing
    return Volume(data, affine)


# ----------------------------------------------------------------------------------- materials
@pytest.mark.parametrize("energy_keV", [20.0, 33.0, 60.0, 80.0, 100.0])
def test_water_mass_attenuation_equals_xraydb(energy_keV):
    ours = mass_attenuation(["water"], [energy_keV], dtype=F64)[0, 0]
    assert float(ours) == pytest.approx(float(xraydb.material_mu("water", energy_keV * 1e3, density=1.0)), rel=1e-3)


def test_mass_attenuation_is_the_mass_weighted_sum_of_xraydb_elements():
    bone = MATERIALS["bone"]
    expected = sum(w * xraydb.mu_elam(z, 60e3) for z, w in bone.mass_fractions)
    assert float(mass_attenuation(["bone"], [60.0], dtype=F64)[0, 0]) == pytest.approx(float(expected), rel=1e-12)
    # NIST SRD 126, cortical bone (ICRU-44): 0.3148 cm²/g at 60 keV, 0.2229 at 80 keV
    values = mass_attenuation(["bone"], torch.tensor([60.0, 80.0], dtype=F64))[0]
    assert values.dtype == F64
    torch.testing.assert_close(values, torch.tensor([0.3148, 0.2229], dtype=F64), rtol=2e-3, atol=0)


def test_mass_attenuation_errors():
    with pytest.raises(ValueError, match="unknown material 'lead'; available: air"):
        mass_attenuation(["lead"], [60.0])
    with pytest.raises(ValueError, match="at least one material"):
        mass_attenuation([], [60.0])
    with pytest.raises(ValueError, match="energies_keV"):
        mass_attenuation(["water"], [0.0])


def test_density_calibration_knots_and_extrapolation():
    calibration = HUDensityCalibration()
    hu = torch.tensor([-2000.0, -1000.0, -500.0, 0.0, HU_BONE, 2 * HU_BONE], dtype=F64)
    bone = MATERIALS["bone"].density
    expected = torch.tensor([0.0, 0.0, 0.5, 1.0, bone, 2 * bone - 1.0], dtype=F64)
    torch.testing.assert_close(calibration(hu), expected)


@pytest.mark.parametrize(
    "knots", [((0.0, 1.0),), ((0.0, 1.0), (0.0, 2.0)), ((0.0, 1.0), (100.0, -1.0)), ((10.0, 1.0), (0.0, 2.0))]
)
def test_density_calibration_errors(knots):
    with pytest.raises(ValueError, match="strictly increasing"):
        HUDensityCalibration(knots)


def test_material_weights_sum_to_one_and_follow_the_thresholds():
    hu = torch.linspace(-1200, 2000, 321, dtype=F64)
    weights = material_weights(hu)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(hu))
    assert (weights >= 0).all()
    at = material_weights(torch.tensor([-1000.0, -800.0, 0.0, 350.0, 1000.0], dtype=F64))
    expected = [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]]
    torch.testing.assert_close(at, torch.tensor(expected, dtype=F64))


@pytest.mark.parametrize("ramps", [((-700.0, -900.0), (200.0, 500.0)), ((-900.0, 300.0), (200.0, 500.0))])
def test_thresholds_errors(ramps):
    with pytest.raises(ValueError, match="HUThresholds"):
        HUThresholds(*ramps)


def test_decompose_hu_partial_densities_sum_to_the_density():
    hu = torch.linspace(-1024, 1500, 4 * 5 * 6, dtype=F64).reshape(1, 4, 5, 6)
    volume = _volume(hu)
    parts = decompose_hu(volume)
    assert parts.channels == 3
    torch.testing.assert_close(parts.affine, volume.affine)
    torch.testing.assert_close(parts.data.sum(0), HUDensityCalibration()(hu[0]))
    assert (parts.data[:, hu[0] <= -1000] == 0).all()  # air renders as nothing


def test_decompose_labels():
    hu = torch.full((1, 2, 2, 2), 0.0, dtype=F64)
    labels = torch.tensor([0, 1, 2, 1, 1, 1, 2, 0]).reshape(2, 2, 2)
    parts = decompose_labels(_volume(hu), labels, 3)
    torch.testing.assert_close(parts.data, torch.nn.functional.one_hot(labels, 3).permute(3, 0, 1, 2).to(F64))


def test_decompose_errors():
    hu = _volume(torch.zeros(1, 2, 2, 2))
    with pytest.raises(TypeError, match="expected a Volume"):
        decompose_hu(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="1-channel"):
        decompose_hu(_volume(torch.zeros(2, 2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        decompose_hu(_volume(torch.full((1, 2, 2, 2), float("nan"))))
    with pytest.raises(TypeError, match="integer labels"):
        decompose_labels(hu, torch.zeros(2, 2, 2), 2)
    with pytest.raises(ValueError, match="volume's shape"):
        decompose_labels(hu, torch.zeros(2, 2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="n_materials"):
        decompose_labels(hu, torch.zeros(2, 2, 2, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\), got values from 0 to 5"):
        decompose_labels(hu, torch.tensor([0, 5, 0, 0, 0, 0, 0, 0]).reshape(2, 2, 2), 2)


# ------------------------------------------------------------------------------------- spectra
def test_shipped_spectra_match_their_file_and_spekpy_when_present():
    assert SHIPPED_KVP == (60, 80, 100, 120)
    with resources.files("xrender.physics").joinpath("data/spectra.npz").open("rb") as f, np.load(f) as table:
        for kvp in SHIPPED_KVP:
            spectrum = load_spectrum(kvp, min_energy_keV=0.0)
            np.testing.assert_array_equal(spectrum.fluence, table[f"fluence_{kvp}"])
            assert spectrum.energies.max() == kvp - 0.5  # 1-keV bins up to the tube voltage
    spekpy = pytest.importorskip("spekpy")
    spek = spekpy.Spek(kvp=80, th=12.0, dk=1.0)
    spek.filter("Al", 2.5)
    _, fluence = spek.get_spectrum()
    np.testing.assert_allclose(load_spectrum(80, min_energy_keV=0.0).fluence, fluence, rtol=1e-6)


def test_spectrum_keeps_its_bins_as_float64_arrays():
    spectrum = Spectrum([60, 80], [1, 3])
    assert spectrum.energies.dtype == np.float64
    assert spectrum.fluence.dtype == np.float64
    assert spectrum.mean_energy_keV == pytest.approx(75.0)


def test_spectrum_weights_and_mean_energy():
    spectrum = load_spectrum(120)
    assert len(spectrum.energies) >= 10
    for response in ("energy-integrating", "photon-counting"):
        assert float(spectrum.weights(response, dtype=F64).sum()) == pytest.approx(1.0)
    # energy weighting moves the detected signal to higher energies
    e = torch.as_tensor(spectrum.energies)
    assert (spectrum.weights("energy-integrating", dtype=F64) @ e) > (
        spectrum.weights("photon-counting", dtype=F64) @ e
    )
    assert 40 < spectrum.mean_energy_keV < 70


def test_spectrum_errors():
    with pytest.raises(ValueError, match="no shipped spectrum at 90 kVp; available: 60, 80, 100, 120"):
        load_spectrum(90)
    with pytest.raises(ValueError, match="one length"):
        Spectrum(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match=r"Spectrum\.energies"):
        Spectrum(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="not all 0"):
        Spectrum(np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="unknown detector response 'ideal'"):
        load_spectrum(80).weights("ideal")


# --------------------------------------------------------------------------- polyenergetic model
def test_monoenergetic_limit_is_beer_lambert_of_todays_render():
    generator = torch.Generator().manual_seed(0)
    densities = _volume(torch.rand(3, 6, 6, 6, generator=generator, dtype=F64) * 1.5)
    pose = standard_pose("ap", CARM.sid, densities.isocenter)
    options = RenderOptions(n_samples=32, backend="grid_sample")
    spectrum = Spectrum.monoenergetic(60.0)
    image = render_polyenergetic(densities, CARM, pose, spectrum, options=options)
    mu_rho = mass_attenuation(("air", "soft tissue", "bone"), [60.0], dtype=F64)[:, 0]
    mu = densities.with_data((densities.data * mu_rho[:, None, None, None]).sum(0, keepdim=True) * CM_PER_MM)
    expected = render(mu, CARM, pose, options=RenderOptions(n_samples=32, backend="grid_sample", beer_lambert=True))
    assert image.shape == (1, 1, 4, 4)
    assert (image < 0.99).all()
    torch.testing.assert_close(image, expected, rtol=1e-12, atol=1e-14)


def test_convention_polyenergetic_units_g_per_cm3_times_mm_make_g_per_cm2():
    """10 cm (100 mm) of water-equivalent tissue at 1 g/cm³, one energy: I/I₀ = exp(−μ/ρ · 10 cm)."""
    data = torch.zeros(3, 22, 22, 22, dtype=F64)
    data[1, 1:-1, 1:-1, 1:-1] = 1.0  # channel 1: soft tissue; 20 voxels of 5 mm
    densities = _volume(data)
    carm = ConeBeam(sdd=2000.0, height=3, width=3, pixel_spacing=(1.0, 1.0), sid=1000.0)
    pose = standard_pose("ap", carm.sid, densities.isocenter)
    image = render_polyenergetic(
        densities, carm, pose, Spectrum.monoenergetic(60.0), options=RenderOptions(step_mm=0.5)
    )
    mu_rho = float(mass_attenuation(["soft tissue"], [60.0], dtype=F64)[0, 0])  # cm²/g
    assert 0.15 < mu_rho < 0.25  # soft tissue at 60 keV, cm²/g (water: 0.206)
    assert float(image[0, 0, 1, 1]) == pytest.approx(np.exp(-mu_rho * 10.0), rel=1e-3)  # transmitted fraction
    assert float(image[0, 0, 1, 1]) < 1.0
    line_integral = log_transform(image[0, 0] * 1e4, 1e4)  # photons at I₀ = 1e4 → −log(I/I₀)
    assert float(line_integral[1, 1]) == pytest.approx(mu_rho * 10.0, rel=1e-3)


def test_beam_hardening_of_a_water_slab():
    spectrum = load_spectrum(80)
    mu_rho = mass_attenuation(["water"], spectrum.energies, dtype=F64)
    weights = spectrum.weights(dtype=F64)
    thickness_cm = torch.tensor([0.5, 1.0, 2.0, 5.0, 10.0, 20.0], dtype=F64)
    transmission = polyenergetic_transmission(thickness_cm[:, None] * 1.0, mu_rho, weights)
    mu_eff = -torch.log(transmission) / thickness_cm
    assert (mu_eff.diff() < 0).all()  # the beam hardens: the effective μ falls with thickness
    # the same number straight from xraydb and the shipped spectrum, at 10 cm of water
    e = spectrum.energies
    signal = spectrum.fluence * e
    mu = np.asarray(xraydb.material_mu("water", e * 1e3, density=1.0))
    direct = -np.log((signal * np.exp(-mu * 10.0)).sum() / signal.sum()) / 10.0
    assert float(mu_eff[4]) == pytest.approx(direct, rel=1e-3)
    assert float(mu[-1]) < direct < float(mu[0])


def test_beam_hardening_through_the_renderer():
    """A 100-mm water cube, rendered: the centre pixel matches the slab formula."""
    data = torch.zeros(3, 22, 22, 22, dtype=F64)
    data[1, 1:-1, 1:-1, 1:-1] = 1.0  # 20 voxels of 5 mm: 100 mm of soft tissue at 1 g/cm³
    densities = _volume(data)
    carm = ConeBeam(sdd=2000.0, height=3, width=3, pixel_spacing=(1.0, 1.0), sid=1000.0)
    pose = standard_pose("ap", carm.sid, densities.isocenter)
    spectrum = load_spectrum(80)
    image = render_polyenergetic(densities, carm, pose, spectrum, options=RenderOptions(step_mm=0.5))
    mu_rho = mass_attenuation(["soft tissue"], spectrum.energies, dtype=F64)
    slab = polyenergetic_transmission(torch.tensor([[10.0]], dtype=F64), mu_rho, spectrum.weights(dtype=F64))
    assert float(image[0, 0, 1, 1]) == pytest.approx(float(slab[0]), rel=2e-3)


def test_polyenergetic_gradcheck_with_respect_to_the_pose():
    generator = torch.Generator().manual_seed(3)
    densities = _volume(torch.rand(3, 6, 6, 6, generator=generator, dtype=F64))
    spectrum = Spectrum(np.array([30.0, 50.0, 70.0]), np.array([1.0, 2.0, 1.0]))
    params = (EULER.from_pose(standard_pose("ap", CARM.sid, densities.isocenter))).detach()
    params = (params + torch.tensor([0.4, -0.3, 0.2, 1.5, -3.0, -1.0], dtype=F64)).requires_grad_()
    options = RenderOptions(n_samples=24, backend="grid_sample")

    def image(p):
        return render_polyenergetic(densities, CARM, p, spectrum, options=options, parameterization=EULER)

    assert gradcheck(image, (params,))


def test_polyenergetic_errors():
    densities = _volume(torch.rand(2, 4, 4, 4, dtype=F64))
    pose = standard_pose("ap", CARM.sid, densities.isocenter)
    spectrum = load_spectrum(60)
    with pytest.raises(ValueError, match="one volume channel per material"):
        render_polyenergetic(densities, CARM, pose, spectrum)
    with pytest.raises(ValueError, match="beer_lambert=False"):
        render_polyenergetic(densities, CARM, pose, spectrum, ["air", "bone"], options=RenderOptions(beer_lambert=True))
    with pytest.raises(ValueError, match="line_integrals"):
        polyenergetic_transmission(torch.ones(5, 3), torch.ones(2, 4), torch.ones(4))
    with pytest.raises(ValueError, match="weights: expected 4 energies"):
        polyenergetic_transmission(torch.ones(5, 2), torch.ones(2, 4), torch.ones(3))


# -------------------------------------------------------------------------------------- detector
def test_poisson_noise_variance_equals_its_mean():
    transmission = torch.full((1, 1, 200, 200), 0.25, dtype=F64)
    detector = Detector(photons=400.0)
    reading = detect(transmission, detector, generator=torch.Generator().manual_seed(7))
    mean, var = float(reading.mean()), float(reading.var())
    assert mean == pytest.approx(100.0, rel=0.01)  # 40 000 draws: standard error of the mean 0.05
    assert var == pytest.approx(mean, rel=0.03)  # standard error of the variance ~0.7 %
    again = detect(transmission, detector, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(reading, again)


def test_electronic_noise_alone_has_its_sigma():
    dark = torch.zeros(2, 100, 100, dtype=F64)  # no photons: no quantum noise
    noisy = detect(dark, Detector(photons=100.0, electronic_sigma=3.0), generator=torch.Generator().manual_seed(1))
    assert float(noisy.mean()) == pytest.approx(0.0, abs=0.05)
    assert float(noisy.std()) == pytest.approx(3.0, rel=0.02)


def test_expected_reading_is_differentiable_and_blurred():
    transmission = torch.zeros(1, 1, 9, 9, dtype=F64)
    transmission[..., 4, 4] = 1.0
    transmission.requires_grad_()
    reading = detect(transmission, Detector(photons=100.0, psf_sigma_px=1.0), noise=False)
    assert float(reading.detach().sum()) == pytest.approx(100.0, rel=1e-3)  # the blur keeps the signal
    assert float(reading.detach()[..., 4, 4]) < 100.0
    reading.sum().backward()
    assert transmission.grad is not None
    assert torch.isfinite(transmission.grad).all()


def test_log_transform_recovers_line_integrals_and_estimates_i0():
    integrals = torch.tensor([[0.0, 0.5], [1.0, 2.0]], dtype=F64)
    reading = 1000.0 * torch.exp(-integrals)
    torch.testing.assert_close(log_transform(reading, 1000.0), integrals)
    air = torch.tensor([[True, False], [False, False]])
    i0 = estimate_i0(reading[None], air)
    torch.testing.assert_close(i0, torch.tensor([1000.0], dtype=F64))
    torch.testing.assert_close(log_transform(reading[None], i0)[0], integrals)
    assert torch.isfinite(log_transform(torch.tensor([[0.0, -3.0]]), 10.0)).all()  # floor


def test_detector_errors():
    with pytest.raises(ValueError, match=r"Detector\.photons"):
        Detector(photons=0.0)
    with pytest.raises(ValueError, match=r"Detector\.electronic_sigma"):
        Detector(electronic_sigma=-1.0)
    with pytest.raises(ValueError, match=r"Detector\.psf_sigma_px"):
        Detector(psf_sigma_px=float("inf"))
    with pytest.raises(ValueError, match="air: expected a boolean mask"):
        estimate_i0(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="air: expected a mask of the images' size"):
        estimate_i0(torch.ones(2, 2), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="i0"):
        log_transform(torch.ones(2, 2), 0.0)
    with pytest.raises(ValueError, match="floor"):
        log_transform(torch.ones(2, 2), 1.0, floor=0.0)


def test_shipped_materials_file_lists_the_materials():
    text = resources.files("xrender.physics").joinpath("data/materials.json").read_text(encoding="utf-8")
    table = json.loads(text)["materials"]
    assert set(table) == set(MATERIALS)
    for name, material in MATERIALS.items():
        assert sum(w for _, w in material.mass_fractions) == pytest.approx(1.0, abs=2e-3), name
