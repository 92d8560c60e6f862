"""Hounsfield units → linear attenuation coefficients μ (mm⁻¹) for rendering.

A DRR integrates μ along each ray; with μ in mm⁻¹ and path lengths in mm the line integral is
dimensionless (Beer–Lambert: ``I = I0 · exp(-∫ μ ds)``).

Models
------
``"linear"`` (`LinearModel`) inverts the definition of the CT number,
``HU = 1000 · (μ − μ_water) / (μ_water − μ_air)`` with ``μ_air ≈ 0``:

    μ(HU) = μ_water · max(0, 1 + HU / 1000)

It is exact when the X-ray image is taken at the CT's effective energy. Below −1000 HU (the
padding values −1024 or −3024 that scanners write outside the field of view) μ is clamped to 0.

``"bilinear"`` (`BilinearModel`) keeps that water–air segment below a knee (0 HU by
default) and uses a second, separately calibrated segment for water–bone mixtures above it,
through the point ``(hu_bone, mu_bone)``:

    μ(HU) = μ_knee + (HU − knee) · (mu_bone − μ_knee) / (hu_bone − knee),   HU > knee

with ``μ_knee = μ_water · (1 + knee / 1000)``, so μ is continuous at the knee. A single line
cannot serve both mixtures once the imaging energy differs from the CT's, because bone's
photoelectric attenuation (calcium, Z = 20) changes with energy much faster than water's.
Bilinear scaling of this kind was introduced for CT-based attenuation maps by Kinahan et al.,
"Attenuation correction for a combined 3D PET/CT scanner", Med. Phys. 25(10):2046–2053 (1998),
and evaluated by Burger et al., Eur. J. Nucl. Med. 29(7):922–927 (2002); piecewise-linear CT
number calibrations per tissue class are also the basis of Schneider, Pedroni & Lomax, "The
calibration of CT Hounsfield units for radiotherapy treatment planning", Phys. Med. Biol.
41(1):111–124 (1996).

Default parameters
------------------
Taken from NIST Standard Reference Database 126 (Hubbell & Seltzer, *X-Ray Mass Attenuation
Coefficients*, Table 4; total μ/ρ with coherent scattering, the values XCOM gives):

=================================  ==========  ==========  ===========
material                           ρ (g/cm³)   μ/ρ 60 keV  μ/ρ 80 keV
=================================  ==========  ==========  ===========
Water, Liquid                      1.000       0.2059      0.1837
Bone, Cortical (ICRU-44)           1.920       0.3148      0.2229
=================================  ==========  ==========  ===========

(μ/ρ in cm²/g.) The imaging energy is taken as **60 keV**, typical of the effective energy of
a filtered diagnostic/fluoroscopic beam, so ``μ_water = 0.2059 cm⁻¹ =`` `MU_WATER`
``= 0.02059 mm⁻¹`` and cortical bone ``μ_bone = 0.3148 · 1.920 / 10 =`` `MU_BONE`
``≈ 0.06044 mm⁻¹``. The CT's effective energy is taken as **80 keV** (a 120-kVp beam after
filtration and patient hardening), where cortical bone reads
``HU_bone = 1000 · (0.2229 · 1.920 / 0.1837 − 1) =`` `HU_BONE` ``≈ 1330 HU``. The bone
segment is therefore about 1.46 times steeper than the water segment. Both energies are
assumptions of the defaults, not of the models: pass your own ``mu_water``, ``mu_bone`` and
``hu_bone`` for another beam or scanner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_tensor
from xrender._registry import Registry
from xrender.volume import Volume

__all__ = [
    "HU_AIR",
    "ATTENUATION_MODELS",
    "HU_BONE",
    "MU_BONE",
    "MU_WATER",
    "AttenuationModel",
    "BilinearModel",
    "LinearModel",
    "get_attenuation_model",
    "hu_to_mu",
]

_CM_PER_MM = 0.1

#: μ of liquid water at 60 keV, mm⁻¹ (NIST SRD 126: μ/ρ = 0.2059 cm²/g, ρ = 1.000 g/cm³).
#: CT number of air, the background of CT volumes and phantoms (HU).
HU_AIR = -1000.0

MU_WATER = 0.2059 * 1.000 * _CM_PER_MM

#: μ of ICRU-44 cortical bone at 60 keV, mm⁻¹ (NIST SRD 126: μ/ρ = 0.3148 cm²/g, ρ = 1.920 g/cm³).
MU_BONE = 0.3148 * 1.920 * _CM_PER_MM

#: CT number of ICRU-44 cortical bone at an 80-keV CT effective energy (μ/ρ: bone 0.2229, water 0.1837 cm²/g).
HU_BONE = 1000.0 * (0.2229 * 1.920 / (0.1837 * 1.000) - 1.0)


class AttenuationModel(ABC):
    """A map from CT numbers (HU) to linear attenuation coefficients (mm⁻¹).

    Models are callable on a tensor of any shape, differentiable where the map is, and return
    a tensor of the input's floating dtype (integer input becomes the default float dtype) on
    the input's device.
    """

    @abstractmethod
    def mu(self, hu: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """μ (mm⁻¹) for floating-point CT numbers ``hu`` (HU), same shape."""

    def __call__(self, hu: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """μ (mm⁻¹), same shape as ``hu`` (HU); never negative."""
        check_tensor(hu, "hu")
        return self.mu(hu if hu.is_floating_point() else hu.to(torch.get_default_dtype()))


@dataclass(frozen=True)
class LinearModel(AttenuationModel):
    """``μ = mu_water · max(0, 1 + HU/1000)``: the inverse of the CT-number definition.

    Attributes:
        mu_water: μ of water at the imaging energy, mm⁻¹; default `MU_WATER` (60 keV).
    """

    mu_water: float = MU_WATER

    def __post_init__(self) -> None:
        check_positive(self.mu_water, "LinearModel.mu_water")

    def mu(self, hu: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        return self.mu_water * torch.clamp(1.0 + hu / 1000.0, min=0.0)


@dataclass(frozen=True)
class BilinearModel(AttenuationModel):
    """Water–air line below ``knee_hu``, water–bone line through ``(hu_bone, mu_bone)`` above.

    Attributes:
        mu_water: μ of water at the imaging energy, mm⁻¹; default `MU_WATER` (60 keV).
        mu_bone: μ of the reference bone at the imaging energy, mm⁻¹; default `MU_BONE`
            (ICRU-44 cortical bone, 60 keV).
        hu_bone: CT number of that bone on the scanner, HU; default `HU_BONE` (80-keV CT
            effective energy).
        knee_hu: CT number where the two lines meet, HU, in ``[-1000, hu_bone)``; default 0
            (water).

    Raises:
        ValueError: non-positive μ, a knee outside ``[-1000, hu_bone)``, or ``mu_bone`` not
            above μ at the knee (the model would not be increasing).
    """

    mu_water: float = MU_WATER
    mu_bone: float = MU_BONE
    hu_bone: float = HU_BONE
    knee_hu: float = 0.0

    def __post_init__(self) -> None:
        check_positive((self.mu_water, self.mu_bone), "BilinearModel (mu_water, mu_bone)")
        if not -1000.0 <= self.knee_hu < self.hu_bone:
            raise ValueError(
                "BilinearModel: expected -1000 <= knee_hu < hu_bone, "
                f"got knee_hu={self.knee_hu} and hu_bone={self.hu_bone}"
            )
        if not self.mu_bone > self.mu_knee:
            raise ValueError(
                f"BilinearModel: expected mu_bone > mu at the knee ({self.mu_knee:.5g} mm^-1), got {self.mu_bone}"
            )

    @property
    def mu_knee(self) -> float:
        """μ at the knee, mm⁻¹, on the water–air line."""
        return self.mu_water * (1.0 + self.knee_hu / 1000.0)

    @property
    def bone_slope(self) -> float:
        """Slope of the upper segment, mm⁻¹ per HU."""
        return (self.mu_bone - self.mu_knee) / (self.hu_bone - self.knee_hu)

    def mu(self, hu: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        lower = self.mu_water * torch.clamp(1.0 + hu / 1000.0, min=0.0)
        upper = self.mu_knee + (hu - self.knee_hu) * self.bone_slope
        return torch.where(hu > self.knee_hu, upper, lower)


#: Registry of named models for `get_attenuation_model`; add one with ``ATTENUATION_MODELS.register``.
ATTENUATION_MODELS: Registry[AttenuationModel] = Registry("attenuation model", AttenuationModel)
ATTENUATION_MODELS.register("linear", LinearModel)
ATTENUATION_MODELS.register("bilinear", BilinearModel)


def get_attenuation_model(name: str, **params: float) -> AttenuationModel:
    """Build a registered model by name.

    Args:
        name: a name in `ATTENUATION_MODELS` (``"linear"``, ``"bilinear"``).
        **params: the model's dataclass fields (e.g. ``mu_water=0.019``); missing ones take
            their defaults.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones) or an invalid parameter value.
        TypeError: a parameter the model does not have (the message lists the accepted ones).
    """
    return ATTENUATION_MODELS.get(name, **params)


def hu_to_mu(
    hu: Volume | Float[Tensor, "..."], model: str | AttenuationModel = "linear"
) -> Volume | Float[Tensor, "..."]:
    """Convert CT numbers (HU) to linear attenuation coefficients (mm⁻¹).

    Args:
        hu: a volume of HU values, or a tensor of any shape.
        model: a registered model name (default parameters) or an `AttenuationModel`.

    Returns:
        A volume with the same geometry and isocentre holding μ, when given a volume; else a
        tensor of ``hu``'s shape.

    Raises:
        ValueError: unknown model name, or non-finite input.
        TypeError: ``hu`` is neither a volume nor a tensor.
    """
    convert = get_attenuation_model(model) if isinstance(model, str) else model
    if isinstance(hu, Volume):
        return hu.with_data(convert(check_finite(hu.data, "hu_to_mu: volume data")))
    return convert(check_finite(check_tensor(hu, "hu_to_mu: hu"), "hu_to_mu: hu"))
