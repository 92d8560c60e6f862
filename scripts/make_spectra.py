"""Regenerate ``xrender/physics/data/``: tube spectra and material compositions from SpekPy.

SpekPy (Poludniowski et al., "SpekPy v2.0 — a software toolkit for modeling x-ray tube spectra",
Med. Phys. 48(7):3630–3637, 2021) is not a dependency of xrender; run this once in an environment
that has it (``pip install spekpy==2.5.4``)::

    python scripts/make_spectra.py

Each spectrum is a tungsten-anode tube at a 12° anode angle, filtered by 2.5 mm of aluminium (the
IEC 60601-1-3 minimum total filtration above 70 kVp), in 1-keV bins; the fluence is SpekPy's
default unit (photons per keV per cm² per mAs at 100 cm from the focal spot), times the bin width.

``materials.json`` holds the elemental mass fractions and reference densities of the materials of
`xrender.physics.materials`, copied from SpekPy's material definitions (which come from PEGS4 of
EGSnrc, after ICRU Report 44 / ICRP); xrender computes their μ/ρ from these with xraydb.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import spekpy

KVPS = (60, 80, 100, 120)
ANODE_ANGLE_DEG = 12.0
FILTER_AL_MM = 2.5
BIN_KEV = 1.0
DATA = Path(__file__).resolve().parents[1] / "xrender" / "physics" / "data"
OUT = DATA / "spectra.npz"
#: xrender's material name → SpekPy's material definition file (without ``.comp``).
MATERIALS = {
    "air": "Air Dry (Near Sea Level)",
    "water": "Water, Liquid",
    "soft tissue": "Tissue, Soft (ICRP)",
    "bone": "Bone, Cortical (ICRU)",
}


def spectrum(kvp: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (keV) and fluence per bin of one tube spectrum."""
    spek = spekpy.Spek(kvp=kvp, th=ANODE_ANGLE_DEG, dk=BIN_KEV)
    spek.filter("Al", FILTER_AL_MM)
    energies, fluence = spek.get_spectrum()
    return np.asarray(energies, dtype=np.float64), np.asarray(fluence, dtype=np.float64) * BIN_KEV


def main() -> None:
    arrays: dict[str, np.ndarray] = {
        "kvp": np.asarray(KVPS, dtype=np.float64),
        "filter_al_mm": np.asarray(FILTER_AL_MM),
        "anode_angle_deg": np.asarray(ANODE_ANGLE_DEG),
        "spekpy_version": np.asarray(spekpy.__version__),
    }
    for kvp in KVPS:
        energies, fluence = spectrum(kvp)
        arrays[f"energy_keV_{kvp}"] = energies
        arrays[f"fluence_{kvp}"] = fluence
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {', '.join(f'{k} kVp' for k in KVPS)}")
    folder = Path(spekpy.__file__).parent / "data" / "matl_def"
    materials = {}
    for name, source in MATERIALS.items():
        composition = json.loads((folder / f"{source}.comp").read_text(encoding="utf-8"))["composition"]
        fractions = {str(int(z)): float(w) for z, w in composition["elements"]}
        materials[name] = {"source": source, "density": float(composition["density"]), "mass_fractions": fractions}
    out = DATA / "materials.json"
    out.write_text(json.dumps({"spekpy_version": spekpy.__version__, "materials": materials}, indent=1) + "\n")
    print(f"wrote {out}: {', '.join(materials)}")


if __name__ == "__main__":
    main()
