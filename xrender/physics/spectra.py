"""X-ray tube spectra and detector energy responses.

`load_spectrum` reads the spectra shipped in ``xrender/physics/data/spectra.npz``: 60, 80, 100
and 120 kVp, tungsten anode at 12°, 2.5 mm Al total filtration, 1-keV bins, computed with
SpekPy 2.5.4 by ``scripts/make_spectra.py`` (SpekPy is not needed to use them). A `Spectrum`
can also be built from your own bins, or be a single line (`Spectrum.monoenergetic`).

The detector's energy response η(E) weighs each bin's photons by the signal they make
(`DETECTOR_RESPONSES`): ``"energy-integrating"`` (η = E: a scintillator-photodiode flat panel
whose signal is the absorbed energy) or ``"photon-counting"`` (η = 1), times the fraction of
photons the detector absorbs: 1 for an ideal detector, or a `Scintillator`'s
1 − exp(−μ(E)·t), with μ from xraydb (e.g. 0.6 mm of CsI absorbs about 88 % at 60 keV but lets
high energies through, which hardens the detected spectrum further).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_positive

__all__ = ["DETECTOR_RESPONSES", "SHIPPED_KVP", "Scintillator", "Spectrum", "load_spectrum"]

#: Detector energy responses η(E) (E in keV) by name.
DETECTOR_RESPONSES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "energy-integrating": lambda energies: energies,
    "photon-counting": np.ones_like,
}


@dataclass(frozen=True)
class Scintillator:
    """A detector's absorbing layer: its absorbed fraction 1 − exp(−μ(E)·t) weighs each energy bin.

    Attributes:
        material: a chemical formula or xraydb material name (e.g. ``"CsI"``, ``"Gd2O2S"``).
        thickness_mm: the layer's thickness, mm, > 0.
        density: g/cm³, > 0; ``None`` takes xraydb's density for a known material name.

    Raises:
        ValueError: a thickness or density not > 0, or a material xraydb cannot read (checked on
            construction, with the density it needs).
    """

    material: str = "CsI"
    thickness_mm: float = 0.6
    density: float | None = 4.51

    def __post_init__(self) -> None:
        check_positive(self.thickness_mm, "Scintillator.thickness_mm")
        if self.density is not None:
            check_positive(self.density, "Scintillator.density")
        try:
            self.absorption(np.asarray([60.0]))
        except Exception as error:  # xraydb raises several kinds for an unknown formula or name
            raise ValueError(
                f"Scintillator.material: xraydb cannot give μ of {self.material!r} at density {self.density!r} "
                f"({str(error).splitlines()[0]}); expected a chemical formula with a density, or an xraydb "
                "material name"
            ) from error

    def absorption(self, energies_keV: np.ndarray) -> np.ndarray:
        """The absorbed fraction 1 − exp(−μ(E)·t) at ``energies_keV`` (total attenuation, xraydb)."""
        import xraydb

        mu_per_cm = xraydb.material_mu(self.material, np.asarray(energies_keV, dtype=np.float64) * 1e3, self.density)
        return -np.expm1(-np.asarray(mu_per_cm) * self.thickness_mm / 10.0)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Photon fluence in energy bins.

    Attributes:
        energies: bin energies, keV, shape ``(E,)``, each > 0.
        fluence: photons per bin (any unit), shape ``(E,)``, each >= 0, not all 0.
        name: a label for figures and messages.

    Raises:
        ValueError: shapes that differ or are not 1-D, energies not finite and > 0, or fluence
            negative, non-finite or all 0.
    """

    energies: np.ndarray
    fluence: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        energies = np.asarray(self.energies, dtype=np.float64)
        fluence = np.asarray(self.fluence, dtype=np.float64)
        if energies.ndim != 1 or energies.shape != fluence.shape or energies.size == 0:
            raise ValueError(
                f"Spectrum: expected 1-D energies and fluence of one length, got shapes {energies.shape} "
                f"and {fluence.shape}"
            )
        check_positive(energies, "Spectrum.energies")
        if not (np.isfinite(fluence).all() and (fluence >= 0).all() and fluence.sum() > 0):
            raise ValueError("Spectrum.fluence: expected finite values >= 0, not all 0")
        object.__setattr__(self, "energies", energies)
        object.__setattr__(self, "fluence", fluence)

    @classmethod
    def monoenergetic(cls, energy_keV: float) -> Spectrum:
        """A single line at ``energy_keV``."""
        return cls(np.asarray([energy_keV], dtype=np.float64), np.ones(1), f"{energy_keV:g} keV")

    @property
    def mean_energy_keV(self) -> float:
        """Fluence-weighted mean energy, keV."""
        return float((self.energies * self.fluence).sum() / self.fluence.sum())

    def weights(
        self,
        response: str = "energy-integrating",
        *,
        scintillator: Scintillator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Float[Tensor, " E"]:
        """The normalised detected-signal weights S(E)·η(E) / Σ S·η, summing to 1.

        Args:
            response: a name in `DETECTOR_RESPONSES`.
            scintillator: the detector's absorbing layer, whose absorbed fraction multiplies η;
                ``None``: every photon is absorbed.
            dtype: of the result (default: the default dtype).
            device: of the result (default: the CPU).

        Raises:
            ValueError: an unknown response.
        """
        if response not in DETECTOR_RESPONSES:
            raise ValueError(f"unknown detector response {response!r}; available: {', '.join(DETECTOR_RESPONSES)}")
        signal = self.fluence * DETECTOR_RESPONSES[response](self.energies)
        if scintillator is not None:
            signal = signal * scintillator.absorption(self.energies)
        return torch.as_tensor(signal / signal.sum(), dtype=dtype or torch.get_default_dtype(), device=device)


def _table() -> dict[str, np.ndarray]:
    with resources.files("xrender.physics").joinpath("data/spectra.npz").open("rb") as f, np.load(f) as npz:
        return {key: npz[key] for key in npz.files}


#: The tube voltages of the shipped spectra, kVp.
SHIPPED_KVP = tuple(int(k) for k in _table()["kvp"])


def load_spectrum(kvp: int, *, min_energy_keV: float = 10.0) -> Spectrum:
    """One of the shipped tube spectra (see the module docstring).

    Args:
        kvp: the tube voltage, one of `SHIPPED_KVP`.
        min_energy_keV: drop the bins below this energy (after 2.5 mm Al they hold less than
            1e-6 of the fluence); 0 keeps them all.

    Raises:
        ValueError: a kVp that is not shipped.
    """
    if kvp not in SHIPPED_KVP:
        raise ValueError(
            f"load_spectrum: no shipped spectrum at {kvp!r} kVp; available: {', '.join(map(str, SHIPPED_KVP))} "
            "(make another with scripts/make_spectra.py, or build a Spectrum from your own bins)"
        )
    table = _table()
    energies, fluence = table[f"energy_keV_{kvp}"], table[f"fluence_{kvp}"]
    keep = energies >= min_energy_keV
    return Spectrum(energies[keep], fluence[keep], f"{kvp} kVp, {float(table['filter_al_mm']):g} mm Al")
