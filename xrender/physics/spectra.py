"""X-ray tube spectra and detector energy responses.

`load_spectrum` reads the spectra shipped in ``xrender/physics/data/spectra.npz``: 60, 80, 100
and 120 kVp, tungsten anode at 12°, 2.5 mm Al total filtration, 1-keV bins, computed with
SpekPy 2.5.4 by ``scripts/make_spectra.py`` (SpekPy is not needed to use them). A `Spectrum`
can also be built from your own bins, or be a single line (`Spectrum.monoenergetic`).

The detector's energy response η(E) weighs each bin's photons by the signal they make
(`DETECTOR_RESPONSES`): ``"energy-integrating"`` (η = E: a scintillator-photodiode flat panel
whose signal is the absorbed energy, taking every photon as absorbed) or ``"photon-counting"``
(η = 1).
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

__all__ = ["DETECTOR_RESPONSES", "SHIPPED_KVP", "Spectrum", "load_spectrum"]

#: Detector energy responses η(E) (E in keV) by name.
DETECTOR_RESPONSES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "energy-integrating": lambda energies: energies,
    "photon-counting": np.ones_like,
}


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
        object.__setattr__(self, "energies_keV", energies)
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
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Float[Tensor, " E"]:
        """The normalised detected-signal weights S(E)·η(E) / Σ S·η, summing to 1.

        Args:
            response: a name in `DETECTOR_RESPONSES`.
            dtype: of the result (default: the default dtype).
            device: of the result (default: the CPU).

        Raises:
            ValueError: an unknown response.
        """
        if response not in DETECTOR_RESPONSES:
            raise ValueError(f"unknown detector response {response!r}; available: {', '.join(DETECTOR_RESPONSES)}")
        signal = self.fluence * DETECTOR_RESPONSES[response](self.energies)
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
