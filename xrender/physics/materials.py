"""Materials: elemental compositions, μ/ρ(E) from xraydb, and the decomposition of a CT into materials.

Compositions
------------
`MATERIALS` holds each material's elemental mass fractions and reference density, read from
``xrender/physics/data/materials.json``. That file is written by ``scripts/make_spectra.py``
from SpekPy's material definitions (PEGS4 of EGSnrc): ``"air"`` (dry air near sea level),
``"water"`` (liquid water), ``"soft tissue"`` (ICRP soft tissue) and ``"bone"`` (ICRU cortical
bone, ρ = 1.92 g/cm³, the ICRU-44 bone of `xrender.attenuation`). The mass attenuation
coefficient of a mixture is the mass-fraction-weighted sum of its elements' (Bragg's additivity
rule), each from xraydb's tables (`xraydb.mu_elam`, total: photoelectric + coherent +
incoherent; Elam, Ravel & Sieber, Radiat. Phys. Chem. 63:121–128, 2002).

Decomposition
-------------
A CT becomes per-material *partial densities* ρ_m(x) (g/cm³) = w_m(HU) · ρ(HU):

* the density ρ(HU) is piecewise linear (`HUDensityCalibration`): 0 at −1000 HU (air renders as
  nothing, as the renderer expects), the water density at 0 HU, and the ICRU cortical-bone
  density at `xrender.attenuation.HU_BONE` (cortical bone's CT number at an 80-keV CT effective
  energy), continued with that slope above. Below 0 HU it is the air–water mixing line, above it
  the water–bone mixing line: the bilinear calibration of `xrender.attenuation.BilinearModel`,
  and the piecewise-linear stoichiometric approach of Schneider, Pedroni & Lomax, Phys. Med.
  Biol. 41(1):111–124 (1996);
* the weights w_m(HU) of air, soft tissue and bone are smoothsteps between HU thresholds
  (`HUThresholds`; by default air below −900, soft tissue between −700 and 200, bone above 500,
  with smooth ramps between, after the thresholds of DeepDRR: Unberath et al., "DeepDRR — a
  catalyst for machine learning in fluoroscopy-guided procedures", MICCAI 2018, which cuts at
  −800 and 350 HU). They sum to 1, so Σ_m ρ_m = ρ(HU).

Or from a label segmentation (`decompose_labels`): ρ_m = ρ(HU) where the label is m, else 0.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape, check_tensor
from xrender.attenuation import HU_AIR, HU_BONE
from xrender.volume import Volume

__all__ = [
    "DEFAULT_MATERIALS",
    "MATERIALS",
    "HUDensityCalibration",
    "HUThresholds",
    "Material",
    "decompose_hu",
    "decompose_labels",
    "mass_attenuation",
    "material_weights",
]

#: The materials of `decompose_hu`, in channel order.
DEFAULT_MATERIALS = ("air", "soft tissue", "bone")


@dataclass(frozen=True)
class Material:
    """A material: name, reference density and elemental composition.

    Attributes:
        name: its name in `MATERIALS`.
        density: reference density, g/cm³.
        mass_fractions: ``((atomic number, mass fraction), ...)``; the fractions sum to 1.
        source: where the composition comes from.
    """

    name: str
    density: float
    mass_fractions: tuple[tuple[int, float], ...]
    source: str = ""


def _load_materials() -> dict[str, Material]:
    text = resources.files("xrender.physics").joinpath("data/materials.json").read_text(encoding="utf-8")
    table = json.loads(text)["materials"]
    return {
        name: Material(
            name, entry["density"], tuple((int(z), w) for z, w in entry["mass_fractions"].items()), entry["source"]
        )
        for name, entry in table.items()
    }


#: The named materials (see the module docstring), by name.
MATERIALS: Mapping[str, Material] = _load_materials()


def _material(material: str | Material) -> Material:
    if isinstance(material, Material):
        return material
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; available: {', '.join(MATERIALS)}")
    return MATERIALS[material]


@cache
def _mu_rho(material: Material, energies_keV: tuple[float, ...]) -> np.ndarray:
    import xraydb  # loaded on first use: it takes most of a second (SQLAlchemy, scipy) to import

    energies_ev = np.asarray(energies_keV, dtype=np.float64) * 1000.0
    return sum(w * np.asarray(xraydb.mu_elam(z, energies_ev, kind="total")) for z, w in material.mass_fractions)


def mass_attenuation(
    materials: Sequence[str | Material],
    energies_keV: Float[Tensor, " E"] | Sequence[float],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Float[Tensor, "M E"]:
    """Mass attenuation coefficients μ/ρ (cm²/g) of materials at energies, from xraydb.

    Args:
        materials: names in `MATERIALS` or `Material` values.
        energies_keV: photon energies, keV (xraydb's tables cover the diagnostic range).
        dtype: of the result; default: that of ``energies_keV`` when it is a floating tensor, else
            the default dtype.
        device: of the result; default: that of ``energies_keV`` when it is a floating tensor, else the CPU.

    Returns:
        ``(M, E)`` total μ/ρ (photoelectric + coherent + incoherent), cm²/g.

    Raises:
        ValueError: an unknown material name, no materials, or energies not finite and > 0.
    """
    found = [_material(m) for m in materials]
    if not found:
        raise ValueError("mass_attenuation: expected at least one material, got none")
    if isinstance(energies_keV, Tensor):
        dtype = dtype or (energies_keV.dtype if energies_keV.is_floating_point() else None)
        device = device or energies_keV.device
        energies = tuple(energies_keV.detach().reshape(-1).double().cpu().tolist())
    else:
        energies = tuple(float(e) for e in np.asarray(energies_keV, dtype=np.float64).reshape(-1))
    check_positive(energies, "mass_attenuation: energies_keV")
    table = np.stack([_mu_rho(m, energies) for m in found])
    return torch.as_tensor(table, dtype=dtype or torch.get_default_dtype(), device=device)


@dataclass(frozen=True)
class HUDensityCalibration:
    """Piecewise-linear mass density ρ(HU), g/cm³, through knots, extrapolated linearly above.

    Below the first knot ρ is the first knot's density; above the last it follows the last
    segment's slope. Never negative.

    Attributes:
        knots: ``((hu, density), ...)`` with strictly increasing HU and non-negative densities;
            default: (−1000 HU, 0), (0 HU, water's density), (`xrender.attenuation.HU_BONE`,
            cortical bone's density), see the module docstring.

    Raises:
        ValueError: fewer than two knots, HU not strictly increasing, or a negative density.
    """

    knots: tuple[tuple[float, float], ...] = (
        (HU_AIR, 0.0),
        (0.0, MATERIALS["water"].density),
        (HU_BONE, MATERIALS["bone"].density),
    )

    def __post_init__(self) -> None:
        knots = tuple((float(h), float(r)) for h, r in self.knots)
        hu = [h for h, _ in knots]
        if len(knots) < 2 or any(b <= a for a, b in itertools.pairwise(hu)) or any(not r >= 0 for _, r in knots):
            raise ValueError(
                "HUDensityCalibration.knots: expected at least two (hu, density) pairs with strictly increasing "
                f"hu and densities >= 0, got {self.knots!r}"
            )
        object.__setattr__(self, "knots", knots)

    def __call__(self, hu: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """ρ (g/cm³) of CT numbers ``hu`` (HU), same shape, dtype and device."""
        (h0, r0), *rest = self.knots
        slopes = [(r1 - ra) / (h1 - ha) for (ha, ra), (h1, r1) in zip(self.knots, self.knots[1:])]
        density = r0 + slopes[0] * torch.relu(hu - h0)
        for (h, _), before, after in zip(rest[:-1], slopes, slopes[1:]):
            density = density + (after - before) * torch.relu(hu - h)
        return torch.clamp(density, min=0.0)


@dataclass(frozen=True)
class HUThresholds:
    """Where the air → soft tissue and soft tissue → bone ramps of `material_weights` lie, HU.

    Each ramp is a smoothstep ``3t² − 2t³`` from its first to its second value.

    Attributes:
        air_soft: ``(start, end)`` of the air → soft-tissue ramp; default (−900, −700).
        soft_bone: ``(start, end)`` of the soft-tissue → bone ramp; default (200, 500).

    Raises:
        ValueError: a ramp whose start is not below its end, or ramps that overlap.
    """

    air_soft: tuple[float, float] = (-900.0, -700.0)
    soft_bone: tuple[float, float] = (200.0, 500.0)

    def __post_init__(self) -> None:
        (a0, a1), (b0, b1) = self.air_soft, self.soft_bone
        if not a0 < a1 <= b0 < b1:
            raise ValueError(
                "HUThresholds: expected air_soft[0] < air_soft[1] <= soft_bone[0] < soft_bone[1], "
                f"got air_soft={self.air_soft} and soft_bone={self.soft_bone}"
            )


def _smoothstep(x: Tensor, start: float, end: float) -> Tensor:
    t = torch.clamp((x - start) / (end - start), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def material_weights(hu: Float[Tensor, "..."], thresholds: HUThresholds = HUThresholds()) -> Float[Tensor, "... 3"]:
    """Soft air / soft-tissue / bone fractions of CT numbers, summing to 1.

    Args:
        hu: CT numbers, HU, any shape (floating).
        thresholds: the ramps between the materials.

    Returns:
        ``(..., 3)``: the weights of `DEFAULT_MATERIALS` (air, soft tissue, bone), each in
        [0, 1], smooth (C¹) in ``hu``.
    """
    above_air = _smoothstep(hu, *thresholds.air_soft)
    bone = _smoothstep(hu, *thresholds.soft_bone)
    return torch.stack([1.0 - above_air, above_air - bone, bone], dim=-1)


def _hu_data(hu: Volume, name: str) -> Tensor:
    if not isinstance(hu, Volume):
        raise TypeError(f"{name}: expected a Volume of CT numbers (HU), got {type(hu).__name__}")
    if hu.channels != 1:
        raise ValueError(f"{name}: expected a 1-channel volume of CT numbers (HU), got {hu.channels} channels")
    data = hu.data if hu.data.is_floating_point() else hu.data.to(torch.get_default_dtype())
    return check_finite(data[0], f"{name}: volume data")


def decompose_hu(
    hu: Volume,
    *,
    thresholds: HUThresholds = HUThresholds(),
    calibration: HUDensityCalibration = HUDensityCalibration(),
) -> Volume:
    """Per-material partial densities of a CT, by soft HU thresholds (see the module docstring).

    Args:
        hu: a 1-channel volume of CT numbers (HU).
        thresholds: the air / soft-tissue / bone ramps.
        calibration: HU → mass density.

    Returns:
        A 3-channel volume (the channels of `DEFAULT_MATERIALS`: air, soft tissue, bone) of
        partial densities, g/cm³, with ``hu``'s geometry and isocentre; differentiable in ``hu``.

    Raises:
        TypeError: ``hu`` is not a `Volume`.
        ValueError: more than one channel, or NaN/inf values.
    """
    data = _hu_data(hu, "decompose_hu")
    density = calibration(data)
    partial = material_weights(data, thresholds) * density[..., None]
    return hu.with_data(partial.permute(3, 0, 1, 2).contiguous())


def decompose_labels(
    hu: Volume,
    labels: Tensor,
    n_materials: int,
    *,
    calibration: HUDensityCalibration = HUDensityCalibration(),
) -> Volume:
    """Per-material partial densities of a CT from a label segmentation.

    Args:
        hu: a 1-channel volume of CT numbers (HU).
        labels: integer labels ``(D, H, W)`` (or ``(1, D, H, W)``) on ``hu``'s grid; label ``m``
            is the material of channel ``m``, in ``[0, n_materials)``.
        n_materials: the number of channels.
        calibration: HU → mass density.

    Returns:
        An ``n_materials``-channel volume: channel ``m`` holds ρ(HU) where the label is ``m``, else 0.

    Raises:
        TypeError: ``hu`` is not a `Volume` or ``labels`` is not an integer tensor.
        ValueError: shapes that differ, ``n_materials < 1``, or labels outside ``[0, n_materials)``.
    """
    data = _hu_data(hu, "decompose_labels")
    check_tensor(labels, "decompose_labels: labels")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"decompose_labels: expected integer labels, got dtype {labels.dtype}")
    labels = labels[0] if labels.ndim == 4 and labels.shape[0] == 1 else labels
    check_shape(labels, "D H W", "decompose_labels: labels")
    if tuple(labels.shape) != tuple(data.shape):
        raise ValueError(
            f"decompose_labels: expected labels of the volume's shape {tuple(data.shape)}, got {tuple(labels.shape)}"
        )
    if isinstance(n_materials, bool) or not isinstance(n_materials, int) or n_materials < 1:
        raise ValueError(f"decompose_labels: expected n_materials an int >= 1, got {n_materials!r}")
    if bool(((labels < 0) | (labels >= n_materials)).any()):
        raise ValueError(
            f"decompose_labels: expected labels in [0, {n_materials}), got values from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    one_hot = torch.nn.functional.one_hot(labels.to(data.device).long(), n_materials).to(data.dtype)
    partial = one_hot * calibration(data)[..., None]
    return hu.with_data(partial.permute(3, 0, 1, 2).contiguous())
