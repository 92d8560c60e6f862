"""Random target-image augmentations for training learned similarities (ProST's recipe).

Simulated targets are cleaner than real X-rays; ProST trains on DRR targets perturbed so the
network cannot rely on rendering details. `TargetAugmentation` rescales each image to [0, 1]
(min–max) and then applies, each independently with probability ``p`` per image:

1. gamma correction $x^\\gamma$, $\\gamma \\sim U(0.7, 1.3)$ (`kornia.enhance.adjust_gamma`);
2. intensity inversion $1 - x$ (`kornia.enhance.invert`);
3. additive Gaussian noise, $\\sigma \\sim U(0.005, 0.01)$;
4. 1–5 random boxes (sides 5–25 % of the image's) of additive Gaussian noise,
   $\\sigma \\sim U(0.05, 0.2)$ — the paper gives no level; this is ours.

Every draw comes from the ``generator`` passed in (on the CPU, then moved), so a training run
replays bit for bit from a saved generator state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape

__all__ = ["TargetAugmentation", "rescale_unit"]


def rescale_unit(images: Float[Tensor, "B C H W"]) -> Float[Tensor, "B C H W"]:
    """Min–max rescale each image to [0, 1]; a constant image becomes 0."""
    low = images.amin(dim=(-3, -2, -1), keepdim=True)
    span = images.amax(dim=(-3, -2, -1), keepdim=True) - low
    return (images - low) / torch.where(span > 0, span, torch.ones_like(span))


def _uniform(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """Uniform draws in ``bounds`` from the CPU ``generator``, in ``like``'s dtype and device."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (bounds[0] + (bounds[1] - bounds[0]) * u).to(dtype=like.dtype, device=like.device)


def _check_range(value: tuple[float, float], name: str, low: float = 0.0) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1]:
        raise ValueError(f"TargetAugmentation.{name}: expected (min, max) with {low} <= min <= max, got {value!r}")


@dataclass(frozen=True)
class TargetAugmentation:
    """ProST's target augmentations (see the module docstring); call it on ``(B, C, H, W)`` images.

    Attributes:
        p: probability of each augmentation, per image.
        gamma: range of the gamma exponent.
        noise_std: range of the whole-image noise level (images in [0, 1]).
        boxes: least and most number of noise boxes.
        box_fraction: range of a box side as a fraction of the image side.
        box_noise_std: range of the noise level inside boxes.
    """

    p: float = 0.5
    gamma: tuple[float, float] = (0.7, 1.3)
    noise_std: tuple[float, float] = (0.005, 0.01)
    boxes: tuple[int, int] = (1, 5)
    box_fraction: tuple[float, float] = (0.05, 0.25)
    box_noise_std: tuple[float, float] = (0.05, 0.2)

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"TargetAugmentation.p: expected a probability in [0, 1], got {self.p!r}")
        _check_range(self.gamma, "gamma", low=1e-3)
        _check_range(self.noise_std, "noise_std")
        _check_range(self.boxes, "boxes", low=1)
        _check_range(self.box_fraction, "box_fraction", low=1e-3)
        if self.box_fraction[1] > 1:
            raise ValueError(f"TargetAugmentation.box_fraction: expected fractions <= 1, got {self.box_fraction!r}")
        _check_range(self.box_noise_std, "box_noise_std")

    def __call__(self, images: Float[Tensor, "B C H W"], generator: torch.Generator) -> Float[Tensor, "B C H W"]:
        """Rescale to [0, 1] and augment; draws come from the CPU ``generator``.

        Raises:
            ValueError: malformed or non-finite images.
        """
        import kornia  # imported on first use, as in xrender.geometry.rotations

        check_finite(check_shape(images, "B C H W", "images"), "images")
        B = images.shape[0]

        def chosen() -> Tensor:
            return (torch.rand(B, generator=generator) < self.p).to(images.device)[:, None, None, None]

        x = rescale_unit(images)
        x = torch.where(chosen(), kornia.enhance.adjust_gamma(x, _uniform(self.gamma, (B,), generator, x)), x)
        x = torch.where(chosen(), kornia.enhance.invert(x, torch.ones_like(x)), x)
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x)
        x = x + chosen() * _uniform(self.noise_std, (B, 1, 1, 1), generator, x) * noise
        return x + chosen() * self._box_noise(x, generator)

    def _box_noise(self, like: Tensor, generator: torch.Generator) -> Tensor:
        """Noise inside ``boxes`` random boxes per image, zero elsewhere: ``(B, 1, H, W)``."""
        B, _, H, W = like.shape
        n = self.boxes[1]
        count = torch.randint(self.boxes[0], n + 1, (B,), generator=generator)
        sides = _uniform(self.box_fraction, (B, n, 2), generator, torch.empty(0, dtype=torch.float64)) * torch.tensor(
            [H, W]
        )
        corners = torch.rand(B, n, 2, generator=generator, dtype=torch.float64) * (torch.tensor([H, W]) - sides)
        rows, cols = torch.arange(H)[:, None], torch.arange(W)[None, :]
        inside = torch.zeros(B, H, W, dtype=torch.bool)
        for b in range(B):
            for k in range(int(count[b])):
                (r0, c0), (h, w) = corners[b, k].tolist(), sides[b, k].tolist()
                inside[b] |= (rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w)
        noise = torch.randn(B, 1, H, W, generator=generator, dtype=torch.float64).to(like)
        return inside[:, None].to(like) * _uniform(self.box_noise_std, (B, 1, 1, 1), generator, like) * noise
