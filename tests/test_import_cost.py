"""Importing xrender loads no heavy optional library: each is imported where it is first used.

`import xrender.registration` took 4.8 s, 3.0 s more than `import torch`, while it loaded cma,
nevergrad, pydicom and kornia (and through them scipy.stats, matplotlib, scikit-learn and pandas)
that only some functions use; ``docs/architecture.md`` has the measurements. The test is
deterministic: it looks at ``sys.modules`` in a fresh interpreter, never at a clock.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Every library package that a user imports first (not `xrender.plot`, whose job is matplotlib,
#: nor `xrender.datasets.deepfluoro`, whose job is h5py). numba (the fused CPU backend registers
#: itself on import) and SimpleITK (volume I/O) are allowed: `xrender.render` needs them at once.
PACKAGES = (
    "xrender",
    "xrender.geometry",
    "xrender.volume",
    "xrender.io",
    "xrender.attenuation",
    "xrender.preprocess",
    "xrender.landmarks",
    "xrender.phantom",
    "xrender.subject",
    "xrender.image",
    "xrender.augment",
    "xrender.info",
    "xrender.render",
    "xrender.physics",
    "xrender.similarity",
    "xrender.registration",
    "xrender.metrics",
)

#: Loaded only by the functions that use them.
HEAVY = (
    "cma",
    "nevergrad",
    "pydicom",
    "kornia",
    "xraydb",
    "h5py",
    "matplotlib",
    "sklearn",
    "pandas",
    "sqlalchemy",
    "scipy.stats",
    "scipy.optimize",
    "scipy.signal",
    "scipy.interpolate",
)


def _loaded_after(*steps: str) -> list[set[str]]:
    """The modules in ``sys.modules`` after each of ``steps``, run in order in one fresh interpreter."""
    report = "print(json.dumps(sorted(sys.modules)))"
    code = "\n".join(["import json, sys", *(f"{step}\n{report}" for step in steps)])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [set(json.loads(line)) for line in done.stdout.splitlines()[-len(steps) :]]


def test_importing_the_library_loads_no_heavy_optional_library_until_it_is_used():
    imported, used = _loaded_after(
        "\n".join(f"import {name}" for name in PACKAGES),
        "import torch\n"
        "xrender.registration.NevergradOptimizer()\n"
        "xrender.geometry.axis_angle_to_matrix(torch.zeros(3))",
    )
    assert set(PACKAGES) <= imported
    assert sorted(name for name in HEAVY if name in imported) == []
    assert {"nevergrad", "kornia"} <= used  # the lazy imports happen where the libraries are used


def test_import_xrender_alone_loads_no_torch():
    (loaded,) = _loaded_after("import xrender")
    assert "xrender" in loaded
    assert "torch" not in loaded
