"""``benchmarks/physics.py`` runs on a small CT and prints its table; its re-binning keeps the fluence."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "physics.py"


def test_physics_benchmark_prints_a_row_per_render(tmp_path):
    array = np.full((16, 16, 16), -1000, dtype=np.int16)
    array[4:12, 4:12, 4:12] = 400
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    args = [sys.executable, str(SCRIPT), "--ct", str(path), "--size", "16", "--runs", "1", "--warmup", "0"]
    env = os.environ | {"PYTHONIOENCODING": "utf-8"}  # the table holds μ and ×, whatever the locale
    result = subprocess.run(
        [*args, "--bins", "10,3", "--threads", "1"], capture_output=True, encoding="utf-8", env=env, check=True
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| render",
        "| mono (1-channel μ)",
        "| 3-channel L_m (no spectral sum)",
        "| poly, 90 bins",
        "| poly, 10 bins",
        "| poly, 3 bins",
    ]
    assert rows[1].endswith("| 1.00 | 1.00 |")


def test_rebin_keeps_the_fluence_and_the_mean_energy():
    from xrender.physics import load_spectrum

    spec = importlib.util.spec_from_file_location("benchmark_physics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the command; runs nothing
    rebin = module.rebin

    spectrum = load_spectrum(100)
    coarse = rebin(spectrum, 10)
    assert len(coarse.energies) == 10
    np.testing.assert_allclose(coarse.fluence.sum(), spectrum.fluence.sum(), rtol=1e-12)
    np.testing.assert_allclose(coarse.mean_energy_keV, spectrum.mean_energy_keV, rtol=1e-12)
    assert np.all(np.diff(coarse.energies) > 0)
