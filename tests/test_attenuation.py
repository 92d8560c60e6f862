"""HU → μ models: anchor points, clamping, monotonicity, continuity, gradients, registry."""

import pytest
import torch

from xrender import Volume
from xrender.attenuation import (
    HU_BONE,
    MU_BONE,
    MU_WATER,
    BilinearModel,
    LinearModel,
    get_attenuation_model,
    hu_to_mu,
)

MODELS = {"linear": LinearModel(), "bilinear": BilinearModel(), "bilinear_knee": BilinearModel(knee_hu=100.0)}


def test_default_constants_follow_the_nist_table():
    # NIST SRD 126: water 0.2059 cm²/g at 60 keV; cortical bone (1.920 g/cm³) 0.3148 at 60 keV, 0.2229 at 80 keV.
    assert pytest.approx(0.02059) == MU_WATER
    assert pytest.approx(0.06044, abs=1e-5) == MU_BONE
    assert pytest.approx(1329.7, abs=0.1) == HU_BONE


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_water_is_mu_water_and_air_is_zero(model):
    mu = model(torch.tensor([0.0, -1000.0], dtype=torch.float64))
    torch.testing.assert_close(mu, torch.tensor([MU_WATER, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_below_air_clamps_to_zero(model):
    mu = model(torch.tensor([-1001.0, -1024.0, -3024.0]))
    assert torch.equal(mu, torch.zeros(3))


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_monotone(model):
    hu = torch.linspace(-3000.0, 4000.0, 7001, dtype=torch.float64)
    steps = model(hu).diff()
    assert bool((steps >= 0).all())
    assert bool((steps[hu[1:] > -1000] > 0).all())


def test_linear_model_formula():
    hu = torch.tensor([-500.0, 1000.0, 2000.0], dtype=torch.float64)
    torch.testing.assert_close(LinearModel(mu_water=0.03)(hu), torch.tensor([0.015, 0.06, 0.09], dtype=torch.float64))


def test_bilinear_passes_through_the_bone_point():
    model = BilinearModel()
    mu = model(torch.tensor([HU_BONE], dtype=torch.float64))
    torch.testing.assert_close(mu, torch.tensor([MU_BONE], dtype=torch.float64))
    # bone is steeper than water at the default energies: ~1.46 times the water slope
    assert model.bone_slope / (MU_WATER / 1000) == pytest.approx(1.4556, abs=1e-3)


@pytest.mark.parametrize("knee", [0.0, 100.0, -200.0])
def test_bilinear_continuous_at_its_knee(knee):
    model = BilinearModel(knee_hu=knee)
    eps = 1e-6
    below, at, above = model(torch.tensor([knee - eps, knee, knee + eps], dtype=torch.float64))
    assert float(above - below) == pytest.approx(0.0, abs=1e-9)
    assert float(at) == pytest.approx(MU_WATER * (1 + knee / 1000), rel=1e-12)


def test_bilinear_reduces_to_linear_when_bone_lies_on_the_water_line():
    hu_bone = 1500.0
    model = BilinearModel(mu_bone=MU_WATER * (1 + hu_bone / 1000), hu_bone=hu_bone)
    hu = torch.linspace(-1500.0, 3000.0, 91, dtype=torch.float64)
    torch.testing.assert_close(model(hu), LinearModel()(hu))


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
def test_gradcheck(model):
    hu = torch.tensor([-900.0, -350.0, -20.0, 40.0, 700.0, 1800.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (hu,))


def test_gradient_is_zero_below_air_and_slopes_above():
    hu = torch.tensor([-1500.0, -500.0, 500.0], dtype=torch.float64, requires_grad=True)
    model = BilinearModel()
    model(hu).sum().backward()
    torch.testing.assert_close(hu.grad, torch.tensor([0.0, MU_WATER / 1000, model.bone_slope], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input(dtype):
    assert hu_to_mu(torch.zeros(2, 3, dtype=dtype), "bilinear").dtype == dtype


def test_integer_input_becomes_default_float():
    mu = hu_to_mu(torch.tensor([0, 1000], dtype=torch.int16))
    assert mu.dtype == torch.get_default_dtype()
    torch.testing.assert_close(mu, torch.tensor([MU_WATER, 2 * MU_WATER]))


def test_hu_to_mu_on_a_volume_keeps_geometry():
    affine = torch.tensor([[0.0, 2.0, 0.0, 5.0], [1.5, 0.0, 0.0, -3.0], [0.0, 0.0, -1.0, 7.0], [0.0, 0.0, 0.0, 1.0]])
    volume = Volume(torch.full((1, 2, 3, 4), 1000.0), affine, isocenter=torch.tensor([1.0, 2.0, 3.0]))
    mu = hu_to_mu(volume, LinearModel(mu_water=0.02))
    assert isinstance(mu, Volume)
    torch.testing.assert_close(mu.data, torch.full((1, 2, 3, 4), 0.04))
    assert torch.equal(mu.affine, volume.affine)
    assert torch.equal(mu.isocenter, volume.isocenter)


def test_get_attenuation_model_with_parameters():
    model = get_attenuation_model("bilinear", mu_water=0.019, knee_hu=50.0)
    assert model == BilinearModel(mu_water=0.019, knee_hu=50.0)


def test_unknown_model_name_lists_the_registry():
    with pytest.raises(ValueError, match=r"unknown attenuation model 'cubic'; available: bilinear, linear"):
        get_attenuation_model("cubic")


def test_unknown_parameter_lists_the_fields():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['mu_bone'\]; accepted options: \['mu_water'\]"):
        get_attenuation_model("linear", mu_bone=0.05)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="mu_water: expected finite values > 0"):
        LinearModel(mu_water=-0.02)
    with pytest.raises(ValueError, match="knee_hu < hu_bone"):
        BilinearModel(knee_hu=2000.0)
    with pytest.raises(ValueError, match="expected mu_bone > mu at the knee"):
        BilinearModel(mu_bone=0.01)


def test_non_finite_input_is_rejected():
    with pytest.raises(ValueError, match="hu_to_mu: hu: expected finite values"):
        hu_to_mu(torch.tensor([0.0, float("nan")]))


def test_non_tensor_input_is_rejected():
    with pytest.raises(TypeError, match=r"expected a torch\.Tensor, got list"):
        hu_to_mu([0.0, 1.0])


def test_convention_attenuation_is_per_millimetre():
    # water at diagnostic energies attenuates about 0.2 per cm = 0.02 per mm
    mu_water = float(hu_to_mu(torch.tensor([0.0]))[0])
    assert 0.015 < mu_water < 0.03
    # so 100 mm of water has an optical depth near 2 (dimensionless), i.e. I/I0 ≈ 0.13
    assert 1.5 < 100.0 * mu_water < 3.0
