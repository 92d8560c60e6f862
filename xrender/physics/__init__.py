"""Realistic X-rays: a differentiable polyenergetic simulator (see *From CT to a realistic X-ray*).

* `decompose_hu`, `decompose_labels`: a CT → per-material partial densities (g/cm³).
* `mass_attenuation`: μ/ρ(E) of the materials, from xraydb; `MATERIALS`: their compositions.
* `load_spectrum`, `Spectrum`: tube spectra (shipped, made with SpekPy) and detector responses.
* `render_polyenergetic`, `polyenergetic_transmission`: I/I₀ of a polyenergetic beam.
* `ScatterModel`, `scatter_estimate`: scatter by kernel superposition (an approximation).
* `Scintillator`: a detector's energy-dependent absorption.
* `Detector`, `detect`, `log_transform`, `estimate_i0`: noise, blur and −log(I/I₀).
* `simulate_xray`: the whole chain, densities → −log(I/I₀) of a noisy reading.
"""

from xrender.physics.detector import Detector, blur, detect, estimate_i0, log_transform
from xrender.physics.materials import (
    DEFAULT_MATERIALS,
    MATERIALS,
    HUDensityCalibration,
    HUThresholds,
    Material,
    decompose_hu,
    decompose_labels,
    mass_attenuation,
    material_weights,
)
from xrender.physics.polyenergetic import CM_PER_MM, polyenergetic_transmission, render_polyenergetic
from xrender.physics.scatter import ScatterModel, scatter_estimate
from xrender.physics.simulate import simulate_xray
from xrender.physics.spectra import DETECTOR_RESPONSES, SHIPPED_KVP, Scintillator, Spectrum, load_spectrum

__all__ = [
    "CM_PER_MM",
    "DEFAULT_MATERIALS",
    "DETECTOR_RESPONSES",
    "MATERIALS",
    "SHIPPED_KVP",
    "Detector",
    "HUDensityCalibration",
    "HUThresholds",
    "Material",
    "ScatterModel",
    "Scintillator",
    "Spectrum",
    "blur",
    "decompose_hu",
    "decompose_labels",
    "detect",
    "estimate_i0",
    "load_spectrum",
    "log_transform",
    "mass_attenuation",
    "material_weights",
    "polyenergetic_transmission",
    "render_polyenergetic",
    "scatter_estimate",
    "simulate_xray",
]
