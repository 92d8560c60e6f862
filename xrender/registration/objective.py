r"""The cost every optimiser minimises: a pose similarity's distance over motion parameters.

`PoseObjective` binds a pose similarity (`xrender.similarity.pose.PoseSimilarity`, higher is
better), one target image and a reference pose, and maps a batch of motion parameters
$x_{1..N}$ (`xrender.geometry.motion`) to costs

$$
f(x) = -\,s\big(T(x), I\big) \;+\; \tfrac{\lambda}{2} \sum_j \Big(\frac{x_j - \mu_j}{\sigma_j}\Big)^2 ,
$$

the negated similarity plus an optional Gaussian **pose prior** (xreg's regulariser: weight
$\lambda$, mean $\mu$ and widths $\sigma$ in degrees and mm). A population is scored with one
batched similarity call per ``max_batch`` poses — CMA-ES's 100 candidates are one or a few renders,
not 100.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.motion import pose_from_motion
from xrender.similarity.pose import PoseSimilarity

__all__ = ["PosePrior", "PoseObjective"]


@dataclass(frozen=True)
class PosePrior:
    """A Gaussian prior on motion parameters: penalty ``weight/2 · Σ ((x − mean)/std)²``.

    Attributes:
        std: widths ``(ωx, ωy, ωz, tu, tv, tdepth)`` in degrees and mm.
        weight: λ, in units of the similarity.
        mean: the prior's centre (default the reference pose, ``x = 0``).
    """

    std: tuple[float, float, float, float, float, float]
    weight: float = 0.01
    mean: tuple[float, float, float, float, float, float] = (0.0,) * 6

    def __post_init__(self) -> None:
        if len(self.std) != 6 or len(self.mean) != 6:
            raise ValueError(f"PosePrior: expected six stds and six means, got {len(self.std)} and {len(self.mean)}")
        for value in self.std:
            check_positive(value, "PosePrior.std")
        check_positive(self.weight, "PosePrior.weight")

    def penalty(self, params: Float[Tensor, "*N 6"]) -> Float[Tensor, "*N"]:
        """``weight/2 · Σ ((x − mean)/std)²`` per parameter vector."""
        mean = params.new_tensor(self.mean)
        std = params.new_tensor(self.std)
        return 0.5 * self.weight * (((params - mean) / std) ** 2).sum(-1)


class PoseObjective:
    """Costs (lower is better) of motion parameters about ``reference`` for one target image.

    Args:
        similarity: a pose similarity with an ``isocenter`` (e.g. `RenderedSimilarity`).
        fixed: the target X-ray, ``(1, 1, H, W)``, at the similarity's detector size.
        reference: the camera-to-world pose ``x = 0`` stands for, ``(4, 4)``.
        prior: optional Gaussian pose prior.
        max_batch: the most poses scored in one similarity call.
    """

    def __init__(
        self,
        similarity: PoseSimilarity,
        fixed: Float[Tensor, "1 1 H W"],
        reference: Float[Tensor, "4 4"],
        *,
        prior: PosePrior | None = None,
        max_batch: int = 64,
    ) -> None:
        check_finite(check_shape(fixed, "1 C H W", "fixed"), "fixed")
        check_finite(check_shape(reference, "4 4", "reference"), "reference")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch: expected an int >= 1, got {max_batch!r}")
        self.similarity = similarity
        self.fixed = fixed
        self.reference = reference.to(torch.float64)
        self.isocenter = similarity.isocenter.to(torch.float64)
        self.prior = prior
        self.max_batch = max_batch
        self.evaluations = 0

    def poses(self, params: Float[Tensor, "N 6"]) -> Float[Tensor, "N 4 4"]:
        """Camera-to-world poses of motion parameters (float64)."""
        return pose_from_motion(params.to(torch.float64), self.reference.to(params.device), self.isocenter)

    def __call__(self, params: Float[Tensor, "N 6"]) -> Float[Tensor, " N"]:
        """Costs of ``params`` (differentiable when ``params`` requires grad)."""
        check_shape(params, "N 6", "params")
        costs = []
        for chunk in params.split(self.max_batch):
            poses = self.poses(chunk)
            fixed = self.fixed.expand(chunk.shape[0], *self.fixed.shape[1:])
            cost = -self.similarity(poses, fixed).to(chunk.dtype)
            if self.prior is not None:
                cost = cost + self.prior.penalty(chunk)
            costs.append(cost)
        self.evaluations += params.shape[0]
        return torch.cat(costs)
