"""The detector: blur, quantum and electronic noise, and the log transform back to line integrals.

`detect` turns the transmitted fraction I/I₀ into a detector reading in photon units:

1. quantum noise: Poisson counts with mean ``photons · I/I₀`` (``photons``: the dose, detected
   photons per pixel of the unattenuated beam); energy-integrating detectors weight photons by
   energy, so their noise is compound Poisson — this Poisson model ignores that (Swank) factor;
2. the detector's point-spread function: a Gaussian blur of ``psf_sigma_px`` pixels (the light
   spread of a scintillator acts on the counted quanta, so the noise it blurs becomes correlated);
3. electronic noise: additive Gaussian, ``electronic_sigma`` photons.

With ``noise=False`` it returns the expected (blurred) reading, differentiable in the image.
Noisy readings are samples: they carry no gradient (`torch.poisson` has none). Every draw takes
a `torch.Generator`, so results are reproducible. `log_transform` gives −log(I/I₀) with I₀ given
or estimated from an air region (`estimate_i0`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from xrender._checks import check_positive, check_shape

__all__ = ["Detector", "blur", "detect", "estimate_i0", "log_transform"]


@dataclass(frozen=True)
class Detector:
    """A detector's dose, noise and blur.

    Attributes:
        photons: detected photons per pixel of the unattenuated beam (I₀ in photons), > 0.
        electronic_sigma: standard deviation of the additive electronic noise, photons, >= 0.
        psf_sigma_px: standard deviation of the Gaussian PSF, pixels; 0 means no blur.

    Raises:
        ValueError: ``photons`` not > 0, or a negative or non-finite sigma.
    """

    photons: float = 1e4
    electronic_sigma: float = 0.0
    psf_sigma_px: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self.photons, "Detector.photons")
        for name in ("electronic_sigma", "psf_sigma_px"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < float("inf")):
                raise ValueError(f"Detector.{name}: expected a finite number >= 0, got {value!r}")


def blur(image: Float[Tensor, "*B H W"], sigma_px: float) -> Float[Tensor, "*B H W"]:
    """Gaussian blur of ``sigma_px`` pixels over the last two dims (reflected borders); 0: unchanged."""
    from kornia.filters import gaussian_blur2d  # imported on first use, as in xrender.geometry.rotations

    if sigma_px == 0:
        return image
    check_shape(image, "* H W", "image")
    radius = max(1, int(3.0 * sigma_px + 0.5))
    flat = image.reshape(-1, 1, *image.shape[-2:])
    out = gaussian_blur2d(flat, (2 * radius + 1, 2 * radius + 1), (sigma_px, sigma_px), border_type="reflect")
    return out.reshape(image.shape)


def detect(
    transmission: Float[Tensor, "*B H W"],
    detector: Detector,
    *,
    noise: bool = True,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "*B H W"]:
    """The detector reading, in photons, of a transmitted fraction I/I₀ (see the module docstring).

    Args:
        transmission: I/I₀ in [0, 1], images in the last two dims (e.g. `render_polyenergetic`'s
            ``(B, 1, H, W)``).
        detector: dose, noise and blur.
        noise: draw quantum and electronic noise; ``False``: the expected reading (differentiable).
        generator: the random generator of the draws (on the image's device); ``None``: torch's
            global one.

    Returns:
        The reading, photons, same shape, dtype and device; detached when ``noise`` is on.
    """
    expected = transmission * detector.photons
    if not noise:
        return blur(expected, detector.psf_sigma_px)
    counts = torch.poisson(expected.detach().clamp(min=0.0), generator=generator)
    reading = blur(counts, detector.psf_sigma_px)
    if detector.electronic_sigma > 0:
        gauss = torch.randn(reading.shape, generator=generator, dtype=reading.dtype, device=reading.device)
        reading = reading + detector.electronic_sigma * gauss
    return reading


def estimate_i0(reading: Float[Tensor, "*B H W"], air: Bool[Tensor, "*B H W"]) -> Float[Tensor, "*B"]:
    """I₀ per image: the mean reading over an air region (a mask broadcastable to the images).

    Raises:
        ValueError: a mask of another image size, or an empty mask.
    """
    check_shape(reading, "* H W", "reading")
    check_shape(air, "* H W", "air")
    if air.shape[-2:] != reading.shape[-2:]:
        raise ValueError(
            f"air: expected a mask of the images' size {tuple(reading.shape[-2:])}, got {tuple(air.shape)}"
        )
    if air.dtype != torch.bool or not bool(air.any()):
        raise ValueError("air: expected a boolean mask with at least one True pixel")
    mask = air.to(reading.dtype).expand_as(reading)
    return (reading * mask).sum((-2, -1)) / mask.sum((-2, -1))


def log_transform(
    reading: Float[Tensor, "*B H W"], i0: float | Float[Tensor, "*B"], *, floor: float = 0.5
) -> Float[Tensor, "*B H W"]:
    """Line integrals −log(I/I₀) of a reading.

    Args:
        reading: the detector reading (photons).
        i0: the unattenuated reading: a number, or one per image (`estimate_i0`).
        floor: readings below it (0 counts, negative electronic noise) are raised to it first,
            photons, > 0.

    Raises:
        ValueError: ``i0`` or ``floor`` not > 0.
    """
    check_positive(floor, "log_transform: floor")
    check_positive(i0, "log_transform: i0")
    i0 = i0[..., None, None] if isinstance(i0, Tensor) else i0
    return -torch.log(reading.clamp(min=floor) / i0)
