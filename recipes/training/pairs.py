"""Training data made on the fly: pose pairs with target X-rays, drawn on subjects.

The subjects are `xrender.subject.Subject` CTs (μ on a ``volume_size³`` cube: the **full** volume
renders the target X-rays, the **moving** one is what the network turns into features).
`PairSampler` draws, for a random subject, a true pose (a perturbation of the AP view
about the isocentre, `xrender.geometry.perturb`) and an initial pose, renders the target at the
true pose and augments it. How the initial pose is drawn is the **pairing** (`PAIRINGS`):

* ``"independent"`` (the MICCAI paper): a draw of the initial-pose distribution about the AP view,
  independent of the true pose;
* ``"offset"``: the true pose moved by a draw of the initial-pose distribution whose six numbers
  are scaled by $\\lambda$, log-uniform in ``offset_scale``: a mixture of offsets from near
  (small $\\lambda$) to the registration's own initial offsets ($\\lambda = 1$), so that the
  gradient is taught both far from the true pose and close to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._registry import Registry
from xrender.augment import TargetAugmentation
from xrender.geometry import ConeBeam, PoseDistribution, get_pose_distribution, perturb, standard_pose
from xrender.render import render
from xrender.subject import Subject

__all__ = ["PAIRINGS", "Pair", "PairSampler"]


@dataclass(frozen=True)
class Pair:
    """One training batch: a subject, true and initial camera-to-world poses, and target images."""

    subject: int
    true_pose: Float[Tensor, "B 4 4"]
    initial_pose: Float[Tensor, "B 4 4"]
    fixed: Float[Tensor, "B 1 H W"]

    def to(self, device: torch.device | str) -> Pair:
        """The same pair with its tensors on ``device``."""
        return Pair(self.subject, self.true_pose.to(device), self.initial_pose.to(device), self.fixed.to(device))


#: Draws initial poses ``(n, 4, 4)`` from true poses ``(n, 4, 4)``, the reference view, the isocentre,
#: the initial-pose distribution, the offset scale range and a generator (see the module docstring).
Pairing = Callable[[Tensor, Tensor, Tensor, PoseDistribution, tuple[float, float], torch.Generator], Tensor]


def _independent(
    true: Tensor, reference: Tensor, isocenter: Tensor, initial: PoseDistribution, scale: tuple[float, float], g
) -> Tensor:
    return perturb(reference, initial.sample(true.shape[0], generator=g, dtype=true.dtype), isocenter)


def _offset(
    true: Tensor, reference: Tensor, isocenter: Tensor, initial: PoseDistribution, scale: tuple[float, float], g
) -> Tensor:
    n = true.shape[0]
    params = initial.sample_params(n, generator=g, dtype=torch.float64)
    low, high = math.log(scale[0]), math.log(scale[1])
    factor = torch.exp(low + (high - low) * torch.rand(n, 1, generator=g, dtype=torch.float64))
    return perturb(true, initial.to_matrix(params * factor).to(true.dtype), isocenter)


#: Pairings by name: how `PairSampler` draws an initial pose for a true pose.
PAIRINGS: Registry[Pairing] = Registry("pairing", object)
PAIRINGS.register("independent", lambda: _independent)
PAIRINGS.register("offset", lambda: _offset)


class PairSampler:
    """Draws `Pair` batches from its own seeded generator (its state is saved in checkpoints).

    Args:
        subjects: the CTs.
        geometry: the C-arm.
        true_poses: name of the true-pose distribution (about the AP view).
        initial_poses: name of the initial-pose distribution (about the AP view or the true pose,
            by ``pairing``).
        augmentation: applied to targets; ``None`` renders clean targets (validation).
        seed: generator seed.
        pairing: a name in `PAIRINGS`.
        offset_scale: ``(low, high)`` range of the offset scale of the ``"offset"`` pairing.

    Raises:
        ValueError: no subjects, an unknown distribution or pairing, or ``offset_scale`` not
            ``0 < low <= high``.
    """

    def __init__(
        self,
        subjects: list[Subject],
        geometry: ConeBeam,
        *,
        true_poses: str,
        initial_poses: str,
        augmentation: TargetAugmentation | None,
        seed: int,
        pairing: str = "independent",
        offset_scale: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if not subjects:
            raise ValueError("PairSampler: expected at least one subject")
        self.subjects = subjects
        self.geometry = geometry
        self.true_poses = get_pose_distribution(true_poses)
        self.initial_poses = get_pose_distribution(initial_poses)
        self.pairing = PAIRINGS.get(pairing)
        low, high = (float(v) for v in offset_scale)
        if not 0 < low <= high < math.inf:
            raise ValueError(
                f"PairSampler: offset_scale: expected (low, high) with 0 < low <= high, got {offset_scale!r}"
            )
        self.offset_scale = (low, high)
        self.augmentation = augmentation
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, batch_size: int) -> Pair:
        """A batch of ``batch_size`` pose pairs of one random subject, with targets."""
        index = int(torch.randint(len(self.subjects), (1,), generator=self.generator))
        subject = self.subjects[index]
        full = subject.full
        reference = standard_pose("ap", self.geometry.sid, full.isocenter)
        motion = self.true_poses.sample(batch_size, generator=self.generator, dtype=full.data.dtype)
        true = perturb(reference, motion, full.isocenter)
        initial = self.pairing(true, reference, full.isocenter, self.initial_poses, self.offset_scale, self.generator)
        with torch.no_grad():
            fixed = render(full, self.geometry, true)
            if self.augmentation is not None:
                fixed = self.augmentation(fixed, self.generator)
        return Pair(index, true, initial, fixed)
