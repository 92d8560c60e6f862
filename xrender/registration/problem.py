"""`RegistrationProblem`: what one registration needs — volumes, the C-arm and the X-ray — at any resolution.

Registration runs coarse to fine: each stage works on the detector binned by an integer factor
(`ConeBeam.downsample`), and the target X-ray is binned the same way (the mean of each
``factor × factor`` block, the remainder rows and columns dropped), so image and geometry always
agree pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.volume import Volume

__all__ = ["RegistrationProblem", "bin_image"]


def bin_image(image: Float[Tensor, "B C H W"], factor: int) -> Float[Tensor, "B C h w"]:
    """Average ``factor × factor`` blocks (the image of ``ConeBeam.downsample(factor)``)."""
    if factor == 1:
        return image
    h, w = image.shape[-2] // factor * factor, image.shape[-1] // factor * factor
    return torch.nn.functional.avg_pool2d(image[..., :h, :w], factor)


@dataclass(frozen=True)
class RegistrationProblem:
    """One CT and one X-ray to align.

    Attributes:
        volume: the attenuation volume (μ, mm⁻¹) DRRs are rendered from for intensity similarities.
        geometry: the C-arm that took ``xray``.
        xray: the target image ``(1, 1, H, W)``, line integrals (e.g. −log(I/I₀)) matching DRRs.
        moving: the volume a learned similarity sees (e.g. bone only); ``None``: ``volume``.
    """

    volume: Volume
    geometry: ConeBeam
    xray: Float[Tensor, "1 1 H W"]
    moving: Volume | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.volume, Volume):
            raise TypeError(f"volume: expected an xrender Volume, got {type(self.volume).__name__}")
        if not isinstance(self.geometry, ConeBeam):
            raise TypeError(f"geometry: expected a ConeBeam, got {type(self.geometry).__name__}")
        check_finite(check_shape(self.xray, "1 1 H W", "xray"), "xray")
        expected = (self.geometry.height, self.geometry.width)
        if tuple(self.xray.shape[-2:]) != expected:
            raise ValueError(
                f"xray: expected the geometry's {expected[0]}×{expected[1]} pixels, got "
                f"{self.xray.shape[-2]}×{self.xray.shape[-1]}; crop or bin the image and its geometry together"
            )

    @property
    def isocenter(self) -> Float[Tensor, "3"]:
        """The volume's isocentre (world mm), about which poses are perturbed."""
        return self.volume.isocenter

    @property
    def moving_volume(self) -> Volume:
        """``moving``, or ``volume`` when there is none."""
        return self.volume if self.moving is None else self.moving

    def at(self, factor: int) -> tuple[ConeBeam, Float[Tensor, "1 1 h w"]]:
        """The geometry and the X-ray binned by ``factor``."""
        return self.geometry.downsample(factor), bin_image(self.xray, factor)

    def factor_for_size(self, size: int | None) -> int:
        """The binning factor that brings the detector's longer side to about ``size`` pixels (``None``: 1)."""
        return 1 if size is None else max(1, max(self.geometry.height, self.geometry.width) // size)

    def factor_for(self, size: tuple[int, int]) -> int:
        """The binning factor that brings the detector to exactly ``size = (height, width)`` pixels.

        Raises:
            ValueError: no integer factor does (crop the X-ray and its geometry first).
        """
        height, width = self.geometry.height, self.geometry.width
        factor = height // size[0]
        if factor < 1 or (height, width) != (size[0] * factor, size[1] * factor):
            raise ValueError(
                f"expected a detector that bins exactly to {size[0]}×{size[1]} pixels, got {height}×{width}; "
                "crop the X-ray and its geometry first"
            )
        return factor
