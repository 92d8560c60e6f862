"""`DRR`: a thin `torch.nn.Module` around `xrender.render.drr.render`.

The module keeps the volume's data, affine and isocentre as buffers, so ``.to(device)`` and
``.double()`` move them, plus the C-arm geometry and the render options. It caches the volume's
`VolumePyramid` (content boxes, coarse levels) until a buffer is replaced (``.to()``) or changed
in place, so repeated renders pay the content-box host sync once.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from xrender.geometry.camera import ConeBeam
from xrender.geometry.parameterizations import Parameterization
from xrender.render.drr import render
from xrender.render.options import RenderOptions
from xrender.render.pyramid import VolumePyramid
from xrender.volume import Volume

__all__ = ["DRR", "tensor_versions"]


def tensor_versions(*tensors: Tensor) -> tuple[tuple[int, int], ...]:
    """A key that changes when any tensor is replaced (e.g. by ``.to()``) or written in place.

    Modules that cache something derived from their buffers or weights (a `VolumePyramid`, a
    feature volume) compare it with the key they cached under.

    Examples:
        >>> import torch
        >>> from xrender.render.module import tensor_versions
        >>> t = torch.zeros(3)
        >>> key = tensor_versions(t)
        >>> key == tensor_versions(t)
        True
        >>> _ = t.add_(1.0)  # an in-place write changes the key
        >>> key == tensor_versions(t)
        False
    """
    return tuple((id(t), t._version) for t in tensors)


class DRR(nn.Module):
    """Render DRRs of one volume with one C-arm: ``drr(pose)`` calls `render` with stored options.

    Args:
        volume: the volume to render (e.g. μ in mm⁻¹).
        geometry: the C-arm.
        options: the render options (`RenderOptions`), used by every `forward` call.
        parameterization: how ``forward`` reads parameter vectors; ``None`` for 4×4 poses.

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import DRR, RenderOptions
        >>> affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))  # 2 mm voxels
        >>> volume = Volume(torch.full((1, 8, 8, 8), 0.02, dtype=torch.float64), affine)  # a 16 mm cube, μ = 0.02 / mm
        >>> geometry = ConeBeam(sdd=1000.0, height=4, width=4, pixel_spacing=(20.0, 20.0), sid=500.0)
        >>> drr = DRR(volume, geometry, options=RenderOptions(beer_lambert=True))
        >>> pose = standard_pose("ap", 500.0, volume.isocenter)
        >>> drr(pose)[0, 0].round(decimals=3).tolist()  # exp(-0.32) behind the cube, 1 beside it
        [[1.0, 1.0, 1.0, 1.0], [1.0, 0.726, 0.726, 1.0], [1.0, 0.726, 0.726, 1.0], [1.0, 1.0, 1.0, 1.0]]
        >>> drr(torch.stack([pose, pose])).shape  # a batch of poses
        torch.Size([2, 1, 4, 4])
        >>> euler = DRR(volume, geometry, parameterization="euler")  # poses as (3 angles, 3 translations)
        >>> euler(torch.zeros(6)).shape
        torch.Size([1, 1, 4, 4])
    """

    def __init__(
        self,
        volume: Volume,
        geometry: ConeBeam,
        *,
        options: RenderOptions = RenderOptions(),
        parameterization: str | Parameterization | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(volume, Volume):
            raise TypeError(f"volume: expected a Volume, got {type(volume).__name__}")
        self.register_buffer("data", volume.data)
        self.register_buffer("affine", volume.affine)
        self.register_buffer("isocenter", volume.isocenter)
        self.geometry = geometry
        if not isinstance(options, RenderOptions):
            raise TypeError(f"options: expected a RenderOptions, got {type(options).__name__}")
        self.options = options
        self.parameterization = parameterization
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
        return render(
            self.pyramid,
            self.geometry,
            pose,
            pixels=pixels,
            options=self.options,
            parameterization=self.parameterization,
        )

    def extra_repr(self) -> str:
        shown = (
            f"volume={tuple(self.data.shape)}, detector={self.geometry.height}×{self.geometry.width}, {self.options}"
        )
        return shown if self.parameterization is None else f"{shown}, parameterization={self.parameterization!r}"
