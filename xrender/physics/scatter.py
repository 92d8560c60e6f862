r"""Scatter: a convolution-kernel estimate of the scattered radiation reaching the detector.

Photons scattered in the patient reach the detector too, as a smooth, low-contrast haze that
lowers contrast and makes −log(I/I₀) read low behind thick parts. Monte Carlo transport gives it
exactly, at a cost out of reach here; the standard fast approximation, used for scatter
*correction* in cone-beam CT and radiography, is **scatter kernel superposition** (SKS): every
detector pixel's primary beam is the source of a broad, smooth kernel of scatter around it, and
the kernel's strength grows with the thickness the ray crossed. With T = I_p/I₀ the primary
transmission of a pixel,

    S(u)/I₀ = Σ_u' T(u') · A · T(u')^α · (−ln T(u'))^β · g_σ(u − u'),

where g_σ is a Gaussian of σ mm on the detector normalised to sum to 1, A the amplitude, and
the power laws in T and −ln T shape how the scatter-to-primary ratio (SPR) grows with thickness.
Over a uniform slab (far from the field edges) the SPR is ``A · T^α · (−ln T)^β``; with the
defaults (α = 0, β = 1, A = 0.12) that is about 0.5 behind 20 cm of water at 80–100 kVp
(−ln T ≈ 4.3–4.7 with the shipped spectra), a value typical of a patient imaged through an
anti-scatter grid. The field is taken as collimated to the detector: no scatter comes from outside it (the
convolution pads with zeros, so the SPR falls toward the image edges).

This is an *approximation*, documented as such: one isotropic Gaussian per pixel (real kernels are
heavier-tailed and depend on the object's local shape and on the grid), parameters that are
typical rather than fitted to a system. The form follows Ohnesorge, Flohr & Klingenbeck-Regn,
"Efficient object scatter correction algorithm for third and fourth generation CT scanners",
Eur. Radiol. 9:563–569 (1999), and Sun & Star-Lack, "Improved scatter correction using adaptive
scatter kernel superposition", Phys. Med. Biol. 55:6695–6720 (2010); convolution-filtering scatter
estimates for digital radiography go back to Love & Kruger, Med. Phys. 14:178–185 (1987).

The convolution runs by FFT and is differentiable in T (so in the pose and the volume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_positive, check_shape

__all__ = ["ScatterModel", "scatter_estimate"]


@dataclass(frozen=True)
class ScatterModel:
    """The scatter kernel's strength and width (see the module docstring).

    Attributes:
        amplitude: A, the scatter-to-primary ratio per unit of (−ln T)^β at T^α = 1, >= 0.
        alpha: exponent of the primary transmission T.
        beta: exponent of the thickness term −ln T, >= 0.
        sigma_mm: standard deviation of the Gaussian kernel on the detector, mm, > 0.

    Raises:
        ValueError: a negative or non-finite amplitude or beta, a non-finite alpha, or sigma_mm not > 0.
    """

    amplitude: float = 0.12
    alpha: float = 0.0
    beta: float = 1.0
    sigma_mm: float = 40.0

    def __post_init__(self) -> None:
        for name in ("amplitude", "beta"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < math.inf):
                raise ValueError(f"ScatterModel.{name}: expected a finite number >= 0, got {value!r}")
        if not (isinstance(self.alpha, int | float) and math.isfinite(self.alpha)):
            raise ValueError(f"ScatterModel.alpha: expected a finite number, got {self.alpha!r}")
        check_positive(self.sigma_mm, "ScatterModel.sigma_mm")

    def scatter_to_primary(self, transmission: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        """The kernel strength ``A · T^α · (−ln T)^β`` of each pixel: the SPR over a uniform slab."""
        t = transmission.clamp(min=torch.finfo(transmission.dtype).tiny, max=1.0)
        return self.amplitude * t.pow(self.alpha) * (-torch.log(t)).clamp(min=0.0).pow(self.beta)


def _gaussian(n: int, sigma_px: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A normalised 1-D Gaussian over offsets ``-(n-1) … n-1`` (every offset two n-pixel images can have)."""
    offsets = torch.arange(-(n - 1), n, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    return kernel / kernel.sum()


def scatter_estimate(
    transmission: Float[Tensor, "*B H W"],
    pixel_spacing: tuple[float, float],
    model: ScatterModel = ScatterModel(),
) -> Float[Tensor, "*B H W"]:
    """The scatter S/I₀ reaching each pixel, estimated from the primary transmission (see the module docstring).

    Args:
        transmission: the primary I_p/I₀ in [0, 1], images in the last two dims (e.g.
            `xrender.physics.render_polyenergetic`'s ``(B, 1, H, W)``).
        pixel_spacing: ``(row, column)`` detector pixel spacing, mm (`xrender.geometry.ConeBeam.pixel_spacing`).
        model: the kernel.

    Returns:
        S/I₀, same shape, dtype and device; add it to the primary for the detected fraction.
        Differentiable in ``transmission``.

    Raises:
        ValueError: an input with fewer than two dims, or a spacing that is not two numbers > 0.
    """
    check_shape(transmission, "* H W", "transmission")
    if len(pixel_spacing) != 2:
        raise ValueError(f"scatter_estimate: pixel_spacing: expected (row, column) mm, got {pixel_spacing!r}")
    check_positive(pixel_spacing, "scatter_estimate: pixel_spacing")
    h, w = transmission.shape[-2:]
    source = transmission * model.scatter_to_primary(transmission)
    rows = _gaussian(h, model.sigma_mm / pixel_spacing[0], source.dtype, source.device)
    cols = _gaussian(w, model.sigma_mm / pixel_spacing[1], source.dtype, source.device)
    # linear (zero-padded) convolution by FFT: pad to 2n-1 and keep the centred n
    size = (2 * h - 1, 2 * w - 1)
    kernel = torch.fft.rfft2(torch.outer(rows, cols), s=size)
    spread = torch.fft.irfft2(torch.fft.rfft2(source, s=size) * kernel, s=size)
    return spread[..., h - 1 : 2 * h - 1, w - 1 : 2 * w - 1]
