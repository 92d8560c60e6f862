"""The whole chain from partial densities to the image a C-arm records: −log(I/I₀).

`simulate_xray` = `render_polyenergetic` (primary I_p/I₀) → + `scatter_estimate` (optional) →
`detect` (quantum and electronic noise, PSF) → `log_transform` with the known I₀. Used by
``xrender simulate`` and by the realistic evaluation targets (``xrender evaluate --targets
realistic``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from xrender.geometry import ConeBeam, Parameterization
from xrender.physics.detector import Detector, detect, log_transform
from xrender.physics.materials import DEFAULT_MATERIALS, Material
from xrender.physics.polyenergetic import render_polyenergetic
from xrender.physics.scatter import ScatterModel, scatter_estimate
from xrender.physics.spectra import Scintillator, Spectrum
from xrender.render import RenderOptions, VolumePyramid
from xrender.volume import Volume

__all__ = ["simulate_xray"]


def simulate_xray(
    densities: Volume | VolumePyramid,
    geometry: ConeBeam,
    pose: Float[Tensor, "*B 4 4"] | Float[Tensor, "*B P"],
    spectrum: Spectrum,
    detector: Detector = Detector(),
    *,
    scatter: ScatterModel | None = None,
    scintillator: Scintillator | None = None,
    materials: Sequence[str | Material] = DEFAULT_MATERIALS,
    response: str = "energy-integrating",
    noise: bool = True,
    generator: torch.Generator | None = None,
    options: RenderOptions = RenderOptions(),
    parameterization: str | Parameterization | None = None,
) -> Float[Tensor, "B 1 H W"]:
    """A realistic X-ray: −log(I/I₀) of the detector reading, I₀ = ``detector.photons``.

    Args:
        densities: partial densities ρ_m (g/cm³), one channel per material
            (`xrender.physics.decompose_hu`).
        geometry: the C-arm.
        pose: camera-to-world pose(s) or parameter vectors, as for `xrender.render.render`.
        spectrum: the tube spectrum (`xrender.physics.load_spectrum`).
        detector: dose, electronic noise and PSF.
        scatter: the scatter kernel (`ScatterModel`), or ``None`` for the primary beam alone.
        scintillator: the detector's absorbing layer, or ``None`` (every photon absorbed).
        materials: the material of each channel (default: those of `decompose_hu`).
        response: the detector's energy response, a name in `xrender.physics.DETECTOR_RESPONSES`.
        noise: draw quantum and electronic noise; ``False``: the expected image, differentiable
            in the pose and the densities.
        generator: the noise's random generator (on the volume's device); ``None``: torch's global one.
        options: the render's options (``beer_lambert`` off).
        parameterization: of ``pose`` when it holds parameter vectors.

    Returns:
        ``(B, 1, H, W)`` line integrals −log(I/I₀), in the volume's dtype and on its device.

    Raises:
        ValueError: as `render_polyenergetic`.
    """
    transmission = render_polyenergetic(
        densities,
        geometry,
        pose,
        spectrum,
        materials,
        response=response,
        scintillator=scintillator,
        options=options,
        parameterization=parameterization,
    )
    if scatter is not None:
        transmission = transmission + scatter_estimate(transmission, geometry.pixel_spacing, scatter)
    reading = detect(transmission, detector, noise=noise, generator=generator)
    return log_transform(reading, detector.photons)
