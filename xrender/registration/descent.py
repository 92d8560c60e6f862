r"""Gradient descent on the pose of a pose similarity — stage 1 of the ProST registration.

Each step differentiates the similarity's *distance* (the negated score) with respect to the
volume twist $\xi = (\omega, v)$ in the camera-aligned isocentre frame of the current pose
(`xrender.similarity.gradient_loss.pose_gradient`), normalises its rotation and translation
parts to unit length (a learned similarity is trained for its gradient's *direction* only, and
radians and mm must not compete), averages them with momentum $\mu$,
$m_k = \mu\, m_{k-1} + (1-\mu)\, \hat g_k$ (so a steady direction moves by the full step, a
direction that flips back and forth by less), and moves the volume by

$$
T_{k+1} = \text{perturb}\big(T_k,\ \exp(-[\alpha_k m^r_k,\ \beta_k m^t_k]),\ c\big),
\qquad \alpha_k = \alpha_0 \gamma^k,\ \beta_k = \beta_0 \gamma^k ,
$$

with step sizes $\alpha$ (rotation, degrees → radians) and $\beta$ (translation, mm) shrinking by
$\gamma$ per step.

With ``line_search=True`` the step lengths are chosen on the score instead, separately for the
rotation and the translation: each step goes along the current normalised direction
$-\hat g_k$ (no momentum) with lengths $(\lambda_r \alpha_0, \lambda_t \beta_0)$; the
9 candidates $(a\lambda_r, b\lambda_t)$, $a, b \in \{2, 1, \tfrac12\}$, are scored in
one batched call, the best one is taken if it beats the current score and its lengths become
$(\lambda_r, \lambda_t)$ (at most 8); if none does, the pose stays and both lengths shrink by 4.
Every accepted move raises the score, and a pose stops when both its lengths are below 1/64 (the
line search's own convergence). It stops after ``steps`` steps or, per pose, when the score plateaus (the
standard deviation of its last ``plateau_window`` values below ``plateau_tol``, the paper's
criterion); stopped poses stay where they are. Poses in a batch run independently.

The options are one frozen `DescentOptions`, validated when it is built; `pose_descent` and
`xrender.registration.LearnedDescentStage` take it whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.perturbation import perturb
from xrender.geometry.rotations import nearest_rotation
from xrender.geometry.se3 import make_pose, se3_exp
from xrender.similarity.gradient_loss import normalize_twist, similarity_value_and_gradient
from xrender.similarity.pose import PoseSimilarity

__all__ = ["DescentOptions", "DescentResult", "pose_descent"]


@dataclass(frozen=True)
class DescentResult:
    """Poses and scores along a descent.

    Attributes:
        pose: final camera-to-world poses ``(B, 4, 4)``.
        trajectory: poses before every step and after the last, ``(S + 1, B, 4, 4)``, with ``S`` the
            steps run (fewer than ``steps`` when every pose reached its plateau).
        scores: the score at each pose of ``trajectory``, ``(S + 1, B)``.
        steps_taken: steps each pose moved before it stopped, ``(B,)``.
        evaluations: scores computed per pose (one per gradient, the line search's candidates,
            and the last pose's).
    """

    pose: Float[Tensor, "B 4 4"]
    trajectory: Float[Tensor, "S B 4 4"]
    scores: Float[Tensor, "S B"]
    steps_taken: Tensor
    evaluations: int


@dataclass(frozen=True)
class DescentOptions:
    """How `pose_descent` steps and when it stops (see the module docstring).

    Attributes:
        steps: the most steps to take.
        rotation_step_deg: first rotation step (degrees).
        translation_step_mm: first translation step (mm).
        decay: step-size factor per step, in (0, 1].
        momentum: weight of the previous directions in the running average, in [0, 1).
        plateau_window: number of recent scores the plateau test looks at (>= 2).
        plateau_tol: stop a pose when the std of its last ``plateau_window`` scores is below
            this; ``None`` never stops early.
        line_search: choose each step's rotation and translation lengths on the score (see
            the module docstring); ``decay`` and ``momentum`` are then unused.

    Raises:
        ValueError: an option out of its range; the message names it.
    """

    steps: int = 100
    rotation_step_deg: float = 2.0
    translation_step_mm: float = 4.0
    decay: float = 0.98
    momentum: float = 0.9
    plateau_window: int = 10
    plateau_tol: float | None = None
    line_search: bool = False

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
        for value, name in (
            (self.rotation_step_deg, "rotation_step_deg"),
            (self.translation_step_mm, "translation_step_mm"),
        ):
            check_positive(value, name)
        decay, momentum = self.decay, self.momentum
        if not 0 < decay <= 1 or not 0 <= momentum < 1:
            raise ValueError(f"expected 0 < decay <= 1 and 0 <= momentum < 1, got decay={decay}, momentum={momentum}")
        if self.plateau_window < 2:
            raise ValueError(f"plateau_window: expected >= 2, got {self.plateau_window}")


def pose_descent(
    similarity: PoseSimilarity,
    fixed: Float[Tensor, "B 1 H W"],
    initial: Float[Tensor, "B 4 4"],
    options: DescentOptions = DescentOptions(),
    *,
    progress: bool = False,
) -> DescentResult:
    """Descend the distance ``-similarity(pose, fixed)`` from ``initial`` (see the module docstring).

    Args:
        similarity: a pose similarity (higher is better) with an ``isocenter``.
        fixed: target images, one per pose.
        initial: starting camera-to-world poses.
        options: the steps and the stop rule.
        progress: show a tqdm bar.

    Returns:
        The final poses, the trajectory and the scores.

    Raises:
        ValueError: malformed poses.
    """
    check_finite(check_shape(initial, "B 4 4", "initial"), "initial")
    steps, momentum, decay = options.steps, options.momentum, options.decay
    plateau_window, plateau_tol, line_search = options.plateau_window, options.plateau_tol, options.line_search

    pose = initial.detach()
    isocenter = similarity.isocenter.to(pose.dtype)
    first_steps = [math.radians(options.rotation_step_deg)] * 3 + [options.translation_step_mm] * 3
    scale = torch.tensor(first_steps, dtype=pose.dtype).to(pose.device)

    def moved(pose: Tensor, step: Tensor) -> Tensor:
        pose = perturb(pose, se3_exp(step), isocenter)
        # perturb() triples any rounding error in R's orthonormality; re-project so it cannot grow
        return make_pose(nearest_rotation(pose[..., :3, :3]), pose[..., :3, 3]).detach()

    velocity = torch.zeros(*pose.shape[:-2], 6, dtype=pose.dtype, device=pose.device)
    lengths = torch.ones(pose.shape[0], 2, dtype=pose.dtype, device=pose.device)  # line search: (λ_r, λ_t)
    active = torch.ones(pose.shape[0], dtype=torch.bool, device=pose.device)
    taken = torch.zeros(pose.shape[0], dtype=torch.long, device=pose.device)
    trajectory, scores, evaluations = [pose], [], 0
    for k in tqdm(range(steps), desc="learned descent", disable=not progress, leave=False):
        value, gradient = similarity_value_and_gradient(similarity, pose, fixed, create_graph=False)
        scores.append(value)
        evaluations += 1
        with torch.no_grad():
            if plateau_tol is not None and len(scores) >= plateau_window:
                recent = torch.stack(scores[-plateau_window:])
                active = active & (recent.std(dim=0) >= plateau_tol)
            if line_search:  # converged: the steps tried have become too short to matter
                active = active & (lengths.amax(-1) >= _SHORTEST)
            if (plateau_tol is not None or line_search) and not bool(active.any()):
                break  # every pose has stopped: the rest would be no-op steps
            finite = torch.isfinite(gradient).all(-1, keepdim=True)  # a NaN gradient (degenerate view): no move
            direction = normalize_twist(torch.where(finite, gradient, 0.0))
            if line_search:
                step = -scale * direction * active[:, None].to(pose.dtype)
                pose, lengths = _line_search(similarity, fixed, pose, value, step, lengths, moved)
                evaluations += len(_FACTORS) ** 2
            else:
                velocity = momentum * velocity + (1 - momentum) * direction
                step = -(decay**k) * scale * velocity * active[:, None].to(pose.dtype)
                pose = moved(pose, step)
            taken = taken + active.long()
        trajectory.append(pose)
    if len(scores) < len(trajectory):  # the last pose was not scored inside the loop
        with torch.no_grad():
            scores.append(similarity(pose, fixed))
        evaluations += 1
    return DescentResult(pose, torch.stack(trajectory), torch.stack(scores), taken, evaluations)


#: The line search's candidate factors per part, and its longest and shortest steps (in first steps).
_FACTORS, _LONGEST, _SHORTEST = (2.0, 1.0, 0.5), 8.0, 1.0 / 64


def _line_search(
    similarity: PoseSimilarity,
    fixed: Tensor,
    pose: Tensor,
    value: Tensor,
    step: Tensor,
    lengths: Tensor,
    moved: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """The best of the 9 candidate moves per pose, if it beats ``value``; the new ``(λ_r, λ_t)`` lengths."""
    batch = pose.shape[0]
    factors = torch.tensor(_FACTORS, dtype=pose.dtype, device=pose.device)
    grid = torch.cartesian_prod(factors, factors)  # (9, 2): (rotation, translation) factors
    trial = (lengths[:, None, :] * grid).clamp(max=_LONGEST)  # (B, 9, 2)
    moves = step[:, None, :] * trial.repeat_interleave(3, dim=-1)  # (B, 9, 6)
    candidates = moved(pose[:, None].expand(-1, grid.shape[0], 4, 4).reshape(-1, 4, 4), moves.reshape(-1, 6))
    repeated = fixed[:, None].expand(-1, grid.shape[0], *fixed.shape[1:]).reshape(-1, *fixed.shape[1:])
    scores = similarity(candidates, repeated).reshape(batch, -1)
    best = scores.argmax(-1)
    rows = torch.arange(batch, device=pose.device)
    accepted = scores[rows, best] > value
    chosen = candidates.reshape(batch, -1, 4, 4)[rows, best]
    new_lengths = torch.where(accepted[:, None], trial[rows, best], lengths / 4)
    return torch.where(accepted[:, None, None], chosen, pose), new_lengths
