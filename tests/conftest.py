"""Shared test set-up: the OpenMP wait policy, the ``device`` fixture and the analytic pelvis.

``tests/`` mirrors the package folders (``tests/render`` tests ``xrender.render``, and so on); the
small helper modules beside this file (``_noise``, ``_host_reads``, …) are importable from every
folder (``pythonpath = ["tests"]`` in ``pyproject.toml``).
"""

import os

# torch's and numba's OpenMP pools otherwise busy-wait on each other between kernels (see
# docs/architecture.md): set before torch loads, as the command line does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from _devices import DEVICES

from xrender.phantom import Phantom, pelvis_phantom


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each test that takes it runs once per device in ``_devices.DEVICES``."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def pelvis() -> Phantom:
    """The analytic pelvis phantom (`xrender.phantom.pelvis_phantom`)."""
    return pelvis_phantom()
