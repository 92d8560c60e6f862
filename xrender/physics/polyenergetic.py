"""The polyenergetic forward model: per-material line integrals, then a sum over the spectrum.

For partial densities ρ_m(x) (g/cm³, e.g. from `xrender.physics.decompose_hu`) the renderer
gives, in one multi-channel pass, the density line integrals L_m(u) = ∫ ρ_m ds (g/cm²; the
renderer's mm become cm here). The detected signal relative to the unattenuated beam is

    I(u) / I₀ = Σ_E w(E) · exp(−Σ_m (μ/ρ)_m(E) · L_m(u)),   w(E) = S(E)·η(E) / Σ_E S·η

with S the tube spectrum and η the detector response (`xrender.physics.Spectrum.weights`). The
sum over materials is a matmul ``(…, M) @ (M, E)`` per pixel and the sum over energies a second
one, ``(…, E) @ (E,)``: everything is differentiable in the pose, the densities and μ/ρ. With one
energy it is Beer–Lambert of the μ volume Σ_m (μ/ρ)_m ρ_m. This is the primary beam; scatter
is estimated from it by `xrender.physics.scatter_estimate` (`xrender.physics.simulate_xray` chains both).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender.geometry import ConeBeam, Parameterization
from xrender.physics.materials import DEFAULT_MATERIALS, Material, mass_attenuation
from xrender.physics.spectra import Scintillator, Spectrum
from xrender.render import RenderOptions, VolumePyramid, render
from xrender.volume import Volume

__all__ = ["CM_PER_MM", "polyenergetic_transmission", "render_polyenergetic"]

#: The renderer's path lengths are mm; mass attenuation is per g/cm².
CM_PER_MM = 0.1


def polyenergetic_transmission(
    line_integrals: Float[Tensor, "*B M"],
    mass_attenuation: Float[Tensor, "M E"],
    weights: Float[Tensor, " E"],
) -> Float[Tensor, "*B"]:
    """I/I₀ from density line integrals: ``exp(−L @ μ/ρ) @ w``.

    Args:
        line_integrals: L_m, g/cm², materials last, any leading dims.
        mass_attenuation: μ/ρ, cm²/g, ``(M, E)`` (`xrender.physics.mass_attenuation`).
        weights: detected-signal weights summing to 1, ``(E,)`` (`Spectrum.weights`).

    Returns:
        The transmitted fraction, ``line_integrals``'s leading shape, in its dtype.

    Raises:
        ValueError: shapes that do not chain (M, then E).
    """
    check_shape(mass_attenuation, "M E", "mass_attenuation")
    check_shape(weights, "E", "weights")
    m, e = mass_attenuation.shape
    check_shape(line_integrals, f"* {m}", f"line_integrals (materials last, {m} of them)")
    if weights.shape[0] != e:
        raise ValueError(f"weights: expected {e} energies (the columns of mass_attenuation), got {weights.shape[0]}")
    mu = mass_attenuation.to(line_integrals)
    return torch.exp(-(line_integrals @ mu)) @ weights.to(line_integrals)


def render_polyenergetic(
    densities: Volume | VolumePyramid,
    geometry: ConeBeam,
    pose: Float[Tensor, "*B 4 4"] | Float[Tensor, "*B P"],
    spectrum: Spectrum,
    materials: Sequence[str | Material] = DEFAULT_MATERIALS,
    *,
    response: str = "energy-integrating",
    scintillator: Scintillator | None = None,
    pixels: Float[Tensor, "*B N 2"] | None = None,
    options: RenderOptions = RenderOptions(),
    parameterization: str | Parameterization | None = None,
) -> Float[Tensor, "B 1 *S"]:
    """Render the transmitted fraction I/I₀ of a polyenergetic beam through a material volume.

    Args:
        densities: partial densities ρ_m (g/cm³), one channel per material (or a `VolumePyramid`
            of them); air outside the object must be 0.
        geometry: the C-arm, as for `xrender.render.render`.
        pose: camera-to-world pose(s) or parameter vectors, as for `xrender.render.render`.
        pixels: optional pixel coordinates, as for `xrender.render.render`.
        parameterization: of ``pose`` when it holds parameter vectors, as for `xrender.render.render`.
        spectrum: the tube spectrum (`xrender.physics.load_spectrum`).
        materials: the material of each channel, names in `xrender.physics.MATERIALS` or
            `Material` values; default `DEFAULT_MATERIALS` (the channels of `decompose_hu`).
        response: the detector's energy response, a name in `DETECTOR_RESPONSES`.
        scintillator: the detector's absorbing layer (`Scintillator`); ``None``: every photon is absorbed.
        options: the render's options; ``beer_lambert`` must be off (the exponential is taken here).

    Returns:
        ``(B, 1, H, W)`` (or ``(B, 1, N)`` for ``pixels``) I/I₀ in [0, 1], in the volume's dtype
        and on its device; differentiable with respect to the pose, the densities and ``pixels``.

    Raises:
        ValueError: ``options.beer_lambert`` set, a channel count other than the number of
            materials, an unknown material or response, and what `render` raises.
    """
    if options.beer_lambert:
        raise ValueError("render_polyenergetic: expected RenderOptions(beer_lambert=False); the model takes exp itself")
    data = (densities.volume if isinstance(densities, VolumePyramid) else densities).data
    if data.shape[0] != len(materials):
        raise ValueError(
            f"render_polyenergetic: expected one volume channel per material ({len(materials)}: "
            f"{', '.join(m if isinstance(m, str) else m.name for m in materials)}), got {data.shape[0]} channels"
        )
    weights = spectrum.weights(response, scintillator=scintillator, dtype=data.dtype, device=data.device)
    mu_rho = mass_attenuation(materials, spectrum.energies, dtype=data.dtype, device=data.device)
    integrals = render(densities, geometry, pose, pixels=pixels, options=options, parameterization=parameterization)
    transmitted = polyenergetic_transmission(integrals.movedim(1, -1) * CM_PER_MM, mu_rho, weights)
    return transmitted.unsqueeze(1)
