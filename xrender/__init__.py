"""xrender: differentiable X-ray rendering and 2D/3D registration on PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xrender.volume import LPS_FROM_RAS, Volume

__all__ = ["Volume", "LPS_FROM_RAS"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``xrender.Volume`` and ``xrender.LPS_FROM_RAS``, loaded on first use.

    ``import xrender`` (and so every ``import xrender.<module>``) does not load torch by itself:
    the command line (`xrender.cli`) sets OpenMP's environment before torch loads.
    """
    if name in __all__:
        from xrender import volume

        return getattr(volume, name)
    raise AttributeError(f"module 'xrender' has no attribute {name!r}")
