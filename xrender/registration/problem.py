"""`RegistrationProblem`: what one registration needs — volumes, the C-arm and the X-ray — at any resolution.

Registration runs coarse to fine: each stage works on the detector binned by an integer factor
(`ConeBeam.downsample`), and the target X-ray is binned the same way (the mean of each
``factor × factor`` block, the remainder rows and columns dropped), so image and geometry always
agree pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.geometry.camera import ConeBeam
from xrender.image import bin_image, working_factor
from xrender.volume import Volume

__all__ = ["RegistrationProblem"]


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
        """The geometry and the X-ray binned by ``factor`` (`xrender.image.bin_image`)."""
        return self.geometry.downsample(factor), bin_image(self.xray, factor)

    def at_size(self, size: int | None) -> tuple[ConeBeam, Float[Tensor, "1 1 h w"]]:
        """Both binned so the longer side is about ``size`` pixels (`xrender.image.working_factor`; ``None``: as is)."""
        return self.at(1 if size is None else working_factor((self.geometry.height, self.geometry.width), size))

    def binned_to(self, size: int) -> tuple[ConeBeam, Float[Tensor, "1 1 size size"]]:
        """Both binned to exactly ``size × size`` pixels (`ConeBeam.binned_to`), e.g. a network's input.

        Raises:
            ValueError: the detector is not square or ``size`` does not divide its side.
        """
        return self.geometry.binned_to(size), bin_image(self.xray, self.geometry.height // size)
