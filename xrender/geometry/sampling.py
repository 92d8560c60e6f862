"""Seeded random pose perturbations: the ProST paper's training and test distributions.

A `PoseDistribution` draws volume motions ``δ`` in the isocentre frame (see
`xrender.geometry.perturbation`): three Euler angles (degrees) and three translations (mm)
along the camera axes ``(u, v, depth)``, each an independent Gaussian. Apply a draw to a
reference pose with `xrender.geometry.perturbation.perturb`.

Named distributions (`get_pose_distribution`), from the paper and its code:

* ``"prost-train"`` — MICCAI training: N(0, 9.5°) per Euler angle, N(0, 22 mm) per
  translation. The paper draws the true pose and the initial pose *independently* from it.
* ``"prost-initial"`` — journal version's initial poses: N(0, 25°) per Euler angle, N(0, 25 mm)
  in-plane (u, v) and N(0, 60 mm) in depth.
* ``"wide"`` — twice the journal's σ, for capture-range curves that reach far offsets: N(0, 50°)
  per Euler angle, N(0, 50 mm) in-plane and N(0, 120 mm) in depth. Not from the paper.

Draws are reproducible: the same ``generator`` seed (or int ``seed``) gives the same poses on
every platform, because sampling happens on the CPU in float64 and is then moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender._registry import Registry
from xrender.geometry.rotations import euler_to_matrix
from xrender.geometry.se3 import make_pose

__all__ = [
    "PoseDistribution",
    "available_pose_distributions",
    "get_pose_distribution",
    "register_pose_distribution",
]


@dataclass(frozen=True)
class PoseDistribution:
    """Independent Gaussian Euler angles and translations in the isocentre frame.

    Attributes:
        rotation_std_deg: standard deviations (degrees) of the three Euler angles.
        translation_std_mm: standard deviations (mm) along camera ``u``, ``v`` and depth.
        rotation_mean_deg: means of the Euler angles (degrees).
        translation_mean_mm: means of the translations (mm).
        convention: Euler convention of the angles (SciPy's letters; lowercase = extrinsic).

    Examples:
        >>> import torch
        >>> from xrender.geometry import PoseDistribution
        >>> jitter = PoseDistribution(rotation_std_deg=(2.0, 2.0, 2.0), translation_std_mm=(0.0, 0.0, 10.0))
        >>> params = jitter.sample_params(1000, seed=0, dtype=torch.float64)  # (rx, ry, rz) deg, (tu, tv, tdepth) mm
        >>> params.std(dim=0).round().int().tolist()
        [2, 2, 2, 0, 0, 10]
        >>> jitter.sample(4, seed=0).shape  # volume motions, to pass to perturb
        torch.Size([4, 4, 4])
        >>> torch.equal(jitter.sample(4, seed=0), jitter.sample(4, seed=0))  # seeded draws repeat
        True
    """

    rotation_std_deg: tuple[float, float, float]
    translation_std_mm: tuple[float, float, float]
    rotation_mean_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mean_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    convention: str = "xyz"

    def __post_init__(self) -> None:
        for name in ("rotation_std_deg", "translation_std_mm", "rotation_mean_deg", "translation_mean_mm"):
            values = torch.as_tensor(getattr(self, name), dtype=torch.float64)
            if values.shape != (3,) or not bool(torch.isfinite(values).all()):
                raise ValueError(f"PoseDistribution.{name}: expected three finite numbers, got {getattr(self, name)!r}")
        if any(s < 0 for s in (*self.rotation_std_deg, *self.translation_std_mm)):
            raise ValueError("PoseDistribution: expected standard deviations >= 0")
        euler_to_matrix(torch.zeros(3, dtype=torch.float64), self.convention)  # validates the convention

    def sample_params(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Float[Tensor, "n 6"]:
        """Draw ``n`` parameter vectors ``(rx, ry, rz, tu, tv, tdepth)`` in degrees and mm.

        Pass either a CPU ``generator`` or an int ``seed`` (neither: the global RNG).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"sample_params: expected a non-negative int n, got {n!r}")
        if generator is not None and seed is not None:
            raise ValueError("sample_params: pass generator or seed, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 6, generator=generator, dtype=torch.float64)
        std = torch.tensor((*self.rotation_std_deg, *self.translation_std_mm), dtype=torch.float64)
        mean = torch.tensor((*self.rotation_mean_deg, *self.translation_mean_mm), dtype=torch.float64)
        return (mean + std * z).to(dtype=dtype or torch.get_default_dtype(), device=device)

    def to_matrix(self, params: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B 4 4"]:
        """Turn parameter vectors (degrees, mm) into volume motions ``δ`` (4×4)."""
        check_shape(params, "* 6", "params")
        R = euler_to_matrix(params[..., :3], self.convention, degrees=True)
        return make_pose(R, params[..., 3:])

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Float[Tensor, "n 4 4"]:
        """Draw ``n`` volume motions ``δ`` (4×4) in the isocentre frame."""
        return self.to_matrix(self.sample_params(n, generator=generator, seed=seed, dtype=dtype, device=device))


_DISTRIBUTIONS: Registry[PoseDistribution] = Registry("pose distribution", PoseDistribution)


def register_pose_distribution(name: str, factory: Callable[[], PoseDistribution], *, overwrite: bool = False) -> None:
    """Add a named distribution (``factory()`` builds it).

    Examples:
        >>> from xrender.geometry import PoseDistribution, get_pose_distribution, register_pose_distribution
        >>> def depth_only() -> PoseDistribution:
        ...     return PoseDistribution(rotation_std_deg=(0.0, 0.0, 0.0), translation_std_mm=(0.0, 0.0, 30.0))
        >>> register_pose_distribution("depth-only", depth_only, overwrite=True)
        >>> get_pose_distribution("depth-only").sample_params(2, seed=0)[:, :5].abs().max().item()
        0.0
    """
    _DISTRIBUTIONS.register(name, factory, overwrite=overwrite)


def available_pose_distributions() -> list[str]:
    """Names accepted by `get_pose_distribution`.

    Examples:
        >>> from xrender.geometry import available_pose_distributions
        >>> available_pose_distributions()
        ['prost-initial', 'prost-train', 'wide']
    """
    return _DISTRIBUTIONS.names()


def get_pose_distribution(name: str) -> PoseDistribution:
    """A named distribution (see the module docstring).

    Raises:
        ValueError: unknown name; the message lists the available ones.

    Examples:
        >>> from xrender.geometry import get_pose_distribution
        >>> initial = get_pose_distribution("prost-initial")
        >>> initial.rotation_std_deg, initial.translation_std_mm
        ((25.0, 25.0, 25.0), (25.0, 25.0, 60.0))
    """
    return _DISTRIBUTIONS.get(name)


register_pose_distribution("prost-train", lambda: PoseDistribution((9.5, 9.5, 9.5), (22.0, 22.0, 22.0)))
register_pose_distribution("prost-initial", lambda: PoseDistribution((25.0, 25.0, 25.0), (25.0, 25.0, 60.0)))
register_pose_distribution("wide", lambda: PoseDistribution((50.0, 50.0, 50.0), (50.0, 50.0, 120.0)))
