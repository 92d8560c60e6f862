"""xrender: differentiable X-ray rendering and 2D/3D registration on PyTorch."""

import os

# Measured: torch's OpenMP threads and the fused numba backend's (a second OpenMP runtime) busy-wait
# for each other on a 2-core machine, slowing torch ops after a fused render 10–100× (a 100-step
# ProST descent: 122 s → 14 s; CMA-ES: 15.6 s → 4.2 s). OpenMP reads this when it loads, so it only
# takes effect when xrender is imported before torch; an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from xrender.volume import LPS_FROM_RAS, Volume

__all__ = ["Volume", "LPS_FROM_RAS"]
__version__ = "0.1.0"
