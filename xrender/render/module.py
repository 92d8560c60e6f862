"""`DRR`: a thin `torch.nn.Module` around `xrender.render.drr.render`.

The module keeps the volume's data, affine and isocentre as buffers, so ``.to(device)`` and
``.double()`` move them, plus the C-arm geometry and the render options. It caches the volume's
`VolumePyramid` (content boxes, coarse levels) until a buffer is replaced (``.to()``) or changed
in place, so repeated renders pay the content-box host sync once.
"""

from __future__ import annotations

from typing import Literal

from jaxtyping import Float
from torch import Tensor, nn

from xrender.geometry.camera import ConeBeam
from xrender.geometry.parameterizations import Parameterization
from xrender.render.drr import DEFAULT_MAX_MEMORY_MB, render
from xrender.render.pyramid import VolumePyramid
from xrender.volume import Volume

__all__ = ["DRR", "tensor_versions"]


def tensor_versions(*tensors: Tensor) -> tuple[tuple[int, int], ...]:
    """A key that changes when any tensor is replaced (e.g. by ``.to()``) or written in place.

    Modules that cache something derived from their buffers or weights (a `VolumePyramid`, a
    feature volume) compare it with the key they cached under.
    """
    return tuple((id(t), t._version) for t in tensors)


class DRR(nn.Module):
    """Render DRRs of one volume with one C-arm: ``drr(pose)`` calls `render` with stored options.

    Args:
        volume: the volume to render (e.g. μ in mm⁻¹).
        geometry: the C-arm.
        step_mm: see `render` (as are the other options); used by every `forward` call.
        n_samples: samples per ray instead of a step.
        level: pyramid level or ``"auto"``.
        backend: backend name or ``"auto"``.
        max_memory_mb: budget for one chunk's temporaries, MiB.
        beer_lambert: return intensities ``i0 · exp(−∫)``.
        i0: unattenuated intensity.
        parameterization: how ``forward`` reads parameter vectors; ``None`` for 4×4 poses.
    """

    def __init__(
        self,
        volume: Volume,
        geometry: ConeBeam,
        *,
        step_mm: float | None = None,
        n_samples: int | None = None,
        level: int | Literal["auto"] = 0,
        backend: str = "auto",
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        beer_lambert: bool = False,
        i0: float = 1.0,
        parameterization: str | Parameterization | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(volume, Volume):
            raise TypeError(f"volume: expected a Volume, got {type(volume).__name__}")
        self.register_buffer("data", volume.data)
        self.register_buffer("affine", volume.affine)
        self.register_buffer("isocenter", volume.isocenter)
        self.geometry = geometry
        self.options = {
            "step_mm": step_mm,
            "n_samples": n_samples,
            "level": level,
            "backend": backend,
            "max_memory_mb": max_memory_mb,
            "beer_lambert": beer_lambert,
            "i0": i0,
            "parameterization": parameterization,
        }
        self._cache: tuple[tuple[object, ...], VolumePyramid] | None = None

    @property
    def volume(self) -> Volume:
        """The volume as currently held by the buffers."""
        return self.pyramid.volume

    @property
    def pyramid(self) -> VolumePyramid:
        """The cached level-of-detail pyramid of the current buffers."""
        buffers = (self.data, self.affine, self.isocenter)
        key = tensor_versions(*buffers)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, VolumePyramid(Volume(*buffers)))
        return self._cache[1]

    def forward(
        self,
        pose: Float[Tensor, "*B 4 4"] | Float[Tensor, "*B P"],
        pixels: Float[Tensor, "*B N 2"] | None = None,
    ) -> Float[Tensor, "B C *S"]:
        """Render for ``pose`` (matrices, or parameter vectors with ``parameterization``).

        Returns:
            ``(B, C, H, W)``, or ``(B, C, N)`` with ``pixels`` (see `render`).
        """
        return render(self.pyramid, self.geometry, pose, pixels=pixels, **self.options)

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"volume={tuple(self.data.shape)}, detector={self.geometry.height}×{self.geometry.width}, {shown}"
