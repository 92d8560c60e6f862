"""Draw the picture of the *From CT to a realistic X-ray* concept page with the library itself.

Run: ``python docs/figures/make_realistic_figure.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from xrender.geometry import get_preset, standard_pose
from xrender.phantom import pelvis_phantom
from xrender.physics import (
    CM_PER_MM,
    DEFAULT_MATERIALS,
    Detector,
    ScatterModel,
    Scintillator,
    decompose_hu,
    load_spectrum,
    mass_attenuation,
    render_polyenergetic,
    scatter_estimate,
    simulate_xray,
)
from xrender.plot import save_figure
from xrender.render import render

HERE = Path(__file__).parent


def main() -> Path:
    densities = decompose_hu(pelvis_phantom().to_volume(128, supersample=2))
    carm = get_preset("prost")
    pose = standard_pose("ap", carm.sid, densities.isocenter)
    spectrum = load_spectrum(100)
    poly = render_polyenergetic(densities, carm, pose, spectrum)
    # the monoenergetic image at the spectrum's detected mean energy
    e_mean = float(spectrum.weights() @ torch.as_tensor(spectrum.energies, dtype=torch.float32))
    mu_rho = mass_attenuation(DEFAULT_MATERIALS, [e_mean])[:, 0]
    mono = (render(densities, carm, pose).movedim(1, -1) * CM_PER_MM) @ mu_rho
    primary = -torch.log(poly[0, 0])
    scattered = -torch.log(poly + scatter_estimate(poly, carm.pixel_spacing, ScatterModel()))[0, 0]
    detector = Detector(photons=1e4, electronic_sigma=2.0, psf_sigma_px=0.5)
    noisy = simulate_xray(
        densities,
        carm,
        pose,
        spectrum,
        detector,
        scatter=ScatterModel(),
        scintillator=Scintillator(),
        generator=torch.Generator().manual_seed(0),
    )
    images = {
        f"monoenergetic, {e_mean:.0f} keV": mono[0],
        f"polyenergetic, {spectrum.name}": primary,
        "+ scatter (SPR ≈ 0.5 at 20 cm water)": scattered,
        "polyenergetic − monoenergetic": primary - mono[0],
        "with scatter − without": scattered - primary,
        f"+ CsI, blur, noise: {detector.photons:g} photons/px": noisy[0, 0],
    }
    fig = Figure(figsize=(12, 7.4), layout="constrained")
    for ax, (title, image) in zip(fig.subplots(2, 3).flat, images.items(), strict=True):
        diff = "−" in title
        limit = float(image.abs().max())
        limits = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit} if diff else {"cmap": "gray"}
        shown = ax.imshow(image.detach().numpy(), **limits)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        fig.colorbar(shown, ax=ax, shrink=0.8, label="−log(I/I₀)")
    return save_figure(fig, HERE / "realistic_xray.png", dpi=90)


if __name__ == "__main__":
    print(main())
