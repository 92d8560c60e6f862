"""The X-rays of simulated trials: monoenergetic DRRs, or realistic images the registration did not render.

A registration that renders monoenergetic DRRs and is tested on monoenergetic DRRs of the same
volume commits the "inverse crime": its similarity is exactly zero at the truth and the images
differ only by the pose. Real X-rays differ in many more ways. `TARGETS` names how the trials'
X-rays are made (``xrender evaluate --targets``):

* ``"drr"`` (`DRRTargets`): the DRR of the subject's μ volume at the true pose, the registration's
  own forward model (the inverse crime; the default, and what earlier results used);
* ``"realistic"`` (`RealisticTargets`): `xrender.physics.simulate_xray` of the subject's CT — a
  polyenergetic beam through air, soft tissue and bone, scatter, a CsI detector, its blur and
  quantum and electronic noise, −log with the known I₀ — with a tube voltage and a photon
  fluence (fluoroscopy to radiography) drawn per trial. The registration keeps rendering the fast monoenergetic DRR.

Each trial's draws use their own seed (``numpy.random.SeedSequence((seed, trial, 1))``), apart
from the pose draws, so drr and realistic runs of one seed have the same poses.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender._registry import Registry
from xrender.geometry import ConeBeam
from xrender.physics import (
    SHIPPED_KVP,
    Detector,
    ScatterModel,
    Scintillator,
    decompose_hu,
    load_spectrum,
    simulate_xray,
)
from xrender.render import VolumePyramid, render
from xrender.subject import Subject

__all__ = ["TARGETS", "DRRTargets", "RealisticTargets", "TargetModel", "target_generator"]


def target_generator(seed: int, trial: int) -> torch.Generator:
    """The generator of trial ``trial``'s target draws (kVp, dose, noise): ``SeedSequence((seed, trial, 1))``."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence((seed, trial, 1)).generate_state(1)[0]))


class TargetModel(ABC):
    """How the X-rays of simulated trials are made."""

    @abstractmethod
    def make(
        self, subject: Subject, geometry: ConeBeam, truth: Float[Tensor, "N 4 4"], seed: int
    ) -> tuple[Float[Tensor, "N 1 H W"], list[dict[str, Any]]]:
        """The X-ray of each true pose (float32) and what was drawn for it (a dict per trial, for the records).

        Args:
            subject: the CT.
            geometry: the C-arm.
            truth: the true camera-to-world poses.
            seed: the evaluation's seed (trial ``k`` draws from `target_generator` ``(seed, k)``).
        """


@dataclass(frozen=True)
class DRRTargets(TargetModel):
    """The monoenergetic DRR of ``subject.full`` at each true pose: the registration's own forward model."""

    def make(
        self, subject: Subject, geometry: ConeBeam, truth: Float[Tensor, "N 4 4"], seed: int
    ) -> tuple[Float[Tensor, "N 1 H W"], list[dict[str, Any]]]:
        with torch.no_grad():
            xrays = render(subject.full, geometry, truth).float()  # one batched call (render bounds its memory)
        return xrays, [{} for _ in range(truth.shape[0])]


@dataclass(frozen=True)
class RealisticTargets(TargetModel):
    """Realistic X-rays of ``subject.hu`` (see the module docstring), one tube voltage and dose per trial.

    Attributes:
        kvps: the tube voltages to draw from (uniformly), shipped spectra (`xrender.physics.SHIPPED_KVP`).
        fluence_range: photons per mm² at the detector without the patient, drawn log-uniformly
            between the two; a pixel's dose (photons at I₀) is that times its area. The default
            spans about 10 nGy (a low-dose fluoroscopy frame) to 5 µGy (a radiograph) of air
            kerma, at ~3·10⁴ photons/mm² per µGy (an RQA5-like 70-kVp beam, IEC 62220-1).
        electronic_sigma: the detector's electronic noise, photons.
        psf_sigma_px: the detector's Gaussian blur, pixels.
        scatter: the scatter kernel, or ``None``.
        scintillator: the detector's absorbing layer, or ``None``.

    Raises:
        ValueError: an unshipped kVp, or a fluence range that is not ``0 < low <= high``.
    """

    kvps: tuple[int, ...] = SHIPPED_KVP
    fluence_range: tuple[float, float] = (3e2, 1.5e5)
    electronic_sigma: float = 2.0
    psf_sigma_px: float = 0.5
    scatter: ScatterModel | None = field(default_factory=ScatterModel)
    scintillator: Scintillator | None = field(default_factory=Scintillator)

    def __post_init__(self) -> None:
        if not self.kvps or any(k not in SHIPPED_KVP for k in self.kvps):
            raise ValueError(
                f"RealisticTargets.kvps: expected shipped tube voltages ({', '.join(map(str, SHIPPED_KVP))}), "
                f"got {self.kvps!r}"
            )
        low, high = self.fluence_range
        if not (0 < low <= high < math.inf):
            raise ValueError(
                f"RealisticTargets.fluence_range: expected 0 < low <= high photons per mm², got {self.fluence_range!r}"
            )
        Detector(1.0, self.electronic_sigma, self.psf_sigma_px)  # checks the two sigmas

    def make(
        self, subject: Subject, geometry: ConeBeam, truth: Float[Tensor, "N 4 4"], seed: int
    ) -> tuple[Float[Tensor, "N 1 H W"], list[dict[str, Any]]]:
        if subject.hu is None:
            raise ValueError(
                f"{subject.name}: realistic targets (--targets realistic) need the CT in HU (Subject.hu); "
                "build the subject with xrender.subject.ct_subject, volume_subject or phantom_subject"
            )
        densities = VolumePyramid(decompose_hu(subject.hu))  # its layout and content box made once
        low, high = math.log10(self.fluence_range[0]), math.log10(self.fluence_range[1])
        pixel_mm2 = geometry.pixel_spacing[0] * geometry.pixel_spacing[1]
        xrays, drawn = [], []
        for k in range(truth.shape[0]):
            generator = target_generator(seed, k)
            kvp = self.kvps[int(torch.randint(len(self.kvps), (), generator=generator))]
            fluence = 10 ** (low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64)))
            detector = Detector(fluence * pixel_mm2, self.electronic_sigma, self.psf_sigma_px)
            with torch.no_grad():
                image = simulate_xray(
                    densities,
                    geometry,
                    truth[k : k + 1],
                    load_spectrum(kvp),
                    detector,
                    scatter=self.scatter,
                    scintillator=self.scintillator,
                    generator=generator,
                )
            xrays.append(image.float())
            drawn.append({"kvp": kvp, "photons_per_mm2": fluence, "dose": detector.photons})
        return torch.cat(xrays), drawn


#: How the trials' X-rays are made, by name (``EvaluationConfig.targets``, ``--targets``).
TARGETS: Registry[TargetModel] = Registry("evaluation target", TargetModel)
TARGETS.register("drr", DRRTargets)
TARGETS.register("realistic", RealisticTargets)
