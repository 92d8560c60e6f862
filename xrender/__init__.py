"""xrender: differentiable X-ray rendering and 2D/3D registration on PyTorch."""

from xrender.volume import LPS_FROM_RAS, Volume

__all__ = ["Volume", "LPS_FROM_RAS"]
__version__ = "0.1.0"
