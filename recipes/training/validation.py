"""Validation of a learned similarity on held-out pose pairs: does its gradient point home?

Two figures per pass:

* the mean **cosine** between the network's pose gradient $g_\\text{net}$ and the geodesic
  gradient $g_\\text{geo}$, for the rotation and the translation parts separately (1 = the network
  points exactly toward the true pose, 0 = no better than chance);
* the fraction of poses whose **learned-gradient descent** (`xrender.registration.pose_descent`)
  ends closer to the true pose than it started, by mean TRE over the subject's points — plus the
  median TRE before and after and the fraction ending below 10 mm (the paper's success).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from xrender.metrics import SUCCESS_TRE_MM, target_registration_error
from xrender.recipes.training.pairs import Pair
from xrender.registration import DescentOptions, pose_descent
from xrender.similarity.gradient_loss import similarity_value_and_gradient, target_gradient
from xrender.similarity.pose import PoseSimilarity

__all__ = ["SUCCESS_TRE_MM", "ValidationReport", "part_cosines", "validate"]


@dataclass(frozen=True)
class ValidationReport:
    """Held-out figures (see the module docstring)."""

    rotation_cosine: float
    translation_cosine: float
    improved_fraction: float
    success_fraction: float
    median_tre_before_mm: float
    median_tre_after_mm: float
    poses: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain data."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"gradient cosine rot {self.rotation_cosine:+.3f} trans {self.translation_cosine:+.3f} | descent improves "
            f"{self.improved_fraction:.0%}, TRE<{SUCCESS_TRE_MM:g} mm {self.success_fraction:.0%}, median TRE "
            f"{self.median_tre_before_mm:.1f} → {self.median_tre_after_mm:.1f} mm ({self.poses} poses)"
        )


def part_cosines(a: Tensor, b: Tensor) -> Tensor:
    """Cosines between the rotation parts and between the translation parts of twists: ``(*B, 2)``."""
    a, b = a.unflatten(-1, (2, 3)), b.unflatten(-1, (2, 3))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def validate(
    similarity: PoseSimilarity, pairs: list[Pair], points: Tensor, steps: int, progress: bool = False
) -> ValidationReport:
    """Validate ``similarity`` (put in eval mode by the caller) on held-out ``pairs`` of one subject.

    Args:
        similarity: the pose similarity bound to the subject.
        pairs: held-out batches (clean targets).
        points: world points for TRE ``(N, 3)``.
        steps: descent steps per pose.
        progress: show a progress bar for the descents.
    """
    cosines, before, after = [], [], []
    for pair in pairs:
        _, g_net = similarity_value_and_gradient(similarity, pair.initial_pose, pair.fixed, create_graph=False)
        g_geo = target_gradient(pair.initial_pose, pair.true_pose, similarity.isocenter)
        cosines.append(part_cosines(g_net.detach(), g_geo))
        result = pose_descent(similarity, pair.fixed, pair.initial_pose, DescentOptions(steps=steps), progress=progress)
        before.append(target_registration_error(pair.initial_pose, pair.true_pose, points))
        after.append(target_registration_error(result.pose, pair.true_pose, points))
    cosine = torch.cat(cosines).mean(0)
    tre_before, tre_after = torch.cat(before), torch.cat(after)
    return ValidationReport(
        rotation_cosine=float(cosine[0]),
        translation_cosine=float(cosine[1]),
        improved_fraction=float((tre_after < tre_before).double().mean()),
        success_fraction=float((tre_after < SUCCESS_TRE_MM).double().mean()),
        median_tre_before_mm=float(tre_before.median()),
        median_tre_after_mm=float(tre_after.median()),
        poses=int(tre_before.numel()),
    )
