r"""The double-backward, gradient-driven loss that trains a learned similarity (ProST).

A learned similarity is useful for registration when its **pose gradient points toward the
true pose**. ProST (Gao et al., MICCAI 2020; IEEE TMI 2024) trains for exactly that:

1. differentiate the similarity's score with respect to the pose, keeping the graph
   (``create_graph=True``): $g_\text{net}$;
2. compute the gradient the score *should* have: the Riemannian gradient of the squared SE(3)
   geodesic distance to the true pose, $g_\text{geo}$;
3. penalise the mismatch of their directions; ``loss.backward()`` then differentiates through
   the first derivative (a second derivative) into the network's weights.

**Tangent space.** Both gradients are twists $\xi = (\omega, v)$ of the *volume motion* in the
camera-aligned isocentre frame of the current pose (`xrender.geometry.perturbation`): $\omega$
rotates the volume about its isocentre around the camera's axes (radians), $v$ translates it
along the camera's $u$, $v$ and depth axes (mm). The pose reached by a twist is
``perturb(pose, se3_exp(xi), isocenter)``. Rotation and translation thus decouple, as in the
paper. In this chart the current pose is the identity, so the gradient of the squared geodesic
distance to the true pose is exact and simple:

$$
g_\text{geo} = -2\,\log(\delta^\star), \qquad
\delta^\star = \text{perturbation\_between}(T^\star, T, c),
$$

the volume motion that takes the current pose $T$ to the true pose $T^\star$. A descent step
$-g_\text{geo}/2$ lands on the true pose.

**Signs.** xrender's similarities are higher-is-better, so their *distance* is the negated score
and $g_\text{net} = \partial(-\text{score})/\partial\xi$: a well-trained network has
$g_\text{net} \parallel g_\text{geo}$, and descending the distance (ascending the score) moves
toward the true pose.

**Losses** (`GRADIENT_LOSSES`), on the rotation part $r$ and translation part $t$ of each
gradient, each normalised to unit length ($\hat{\cdot}$) so only directions are learned and the
mixed units (radians, mm) never meet:

* ``"direction"`` (MICCAI): $\|\hat g^r_\text{net} - \hat g^r_\text{geo}\|^2 +
  \|\hat g^t_\text{net} - \hat g^t_\text{geo}\|^2 \in [0, 8]$.
* ``"geodesic"`` (journal): the double geodesic distance (radius 1) between the rigid motions
  $\exp(\hat g_\text{net})$ and $\exp(\hat g_\text{geo})$.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from jaxtyping import Float
from torch import Tensor, nn

from xrender._checks import check_shape
from xrender._registry import Registry
from xrender.geometry.perturbation import perturb, perturbation_between
from xrender.geometry.se3 import double_geodesic_distance, se3_exp, se3_log
from xrender.similarity.pose import PoseGradientSimilarity, PoseSimilarity

__all__ = [
    "GRADIENT_LOSSES",
    "DirectionLoss",
    "GeodesicLoss",
    "GradientLoss",
    "get_gradient_loss",
    "normalize_twist",
    "pose_gradient",
    "pose_value_and_gradient",
    "similarity_value_and_gradient",
    "target_gradient",
    "twist_chart",
]

#: A batched pose score: camera-to-world poses ``(B, 4, 4)`` → scores ``(B,)``, higher is better.
PoseScore = Callable[[Tensor], Tensor]


def twist_chart(pose: Float[Tensor, "B 4 4"], isocenter: Float[Tensor, "*B 3"]) -> Callable[[Tensor], Tensor]:
    r"""The chart of pose gradients: volume twists $\xi = (\omega, v)$ ``(B, 6)`` → poses ``perturb(pose, exp(ξ), c)``.

    $\xi = 0$ is ``pose`` itself; see the module docstring for the frame.
    """
    return lambda xi: perturb(pose, se3_exp(xi), isocenter)


def pose_value_and_gradient(
    score: PoseScore,
    pose: Float[Tensor, "B 4 4"],
    isocenter: Float[Tensor, "*B 3"],
    *,
    create_graph: bool = True,
) -> tuple[Float[Tensor, " B"], Float[Tensor, "B 6"]]:
    r"""The score at ``pose`` and $g_\text{net}$, the gradient of the *distance* ``-score`` w.r.t. the volume twist.

    Evaluates ``score(perturb(pose, se3_exp(xi), isocenter))`` at ``xi = 0`` and returns
    $\partial(-\text{score})/\partial\xi$, ordered $(\omega, v)$ (see the module docstring).

    Args:
        score: batched pose score, higher is better (e.g. a `ProSTSimilarity` bound to a target).
        pose: current camera-to-world poses.
        isocenter: the volume's isocentre, world mm.
        create_graph: keep the graph of the derivative, so a loss on it can be back-propagated
            (a second derivative). ``False`` for registration, which only follows the gradient.

    Returns:
        The scores ``(B,)`` and the ``(B, 6)`` gradients, per radian and per mm (zero where the
        score ignores the pose). Both detached unless ``create_graph``.

    Raises:
        ValueError: malformed poses or a score of the wrong shape (values are not read).
    """
    check_shape(pose, "B 4 4", "pose")
    xi = torch.zeros(*pose.shape[:-2], 6, dtype=pose.dtype, device=pose.device, requires_grad=True)
    with torch.enable_grad():
        values = score(twist_chart(pose, isocenter)(xi))
        check_shape(values, f"{pose.shape[0]}", "score(pose)")
        gradient = None
        if values.requires_grad:
            (gradient,) = torch.autograd.grad(-values.sum(), xi, create_graph=create_graph, allow_unused=True)
    gradient = torch.zeros_like(xi) if gradient is None else gradient
    return (values, gradient) if create_graph else (values.detach(), gradient.detach())


def similarity_value_and_gradient(
    similarity: PoseSimilarity,
    pose: Float[Tensor, "B 4 4"],
    fixed: Float[Tensor, "B 1 H W"],
    *,
    create_graph: bool = True,
) -> tuple[Float[Tensor, " B"], Float[Tensor, "B 6"]]:
    r"""`pose_value_and_gradient` of ``similarity(·, fixed)``, by the similarity's own fast path when it has one.

    A `PoseGradientSimilarity` (e.g. `xrender.similarity.prost.ProSTSimilarity` on the CPU, through
    the pose-Jacobian render) computes $g_\text{net}$ itself; any other pose similarity is
    differentiated by autograd. Both give the same values and gradients (to rounding).
    """
    if isinstance(similarity, PoseGradientSimilarity):
        return similarity.value_and_pose_gradient(pose, fixed, create_graph=create_graph)
    return pose_value_and_gradient(
        partial(similarity, fixed=fixed), pose, similarity.isocenter, create_graph=create_graph
    )


def pose_gradient(
    score: PoseScore,
    pose: Float[Tensor, "B 4 4"],
    isocenter: Float[Tensor, "*B 3"],
    *,
    create_graph: bool = True,
) -> Float[Tensor, "B 6"]:
    r"""$g_\text{net}$ alone; see `pose_value_and_gradient`."""
    return pose_value_and_gradient(score, pose, isocenter, create_graph=create_graph)[1]


def target_gradient(
    pose: Float[Tensor, "*B 4 4"], true_pose: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B 6"]:
    r"""$g_\text{geo} = -2\log(\delta^\star)$: the geodesic gradient toward ``true_pose``, in `pose_gradient`'s chart.

    ``perturb(pose, se3_exp(-g / 2), isocenter)`` equals ``true_pose``.
    """
    return -2 * se3_log(perturbation_between(true_pose, pose, isocenter))


def normalize_twist(g: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B 6"]:
    """Scale the rotation part ``g[..., :3]`` and the translation part ``g[..., 3:]`` to unit length each.

    A zero part stays zero (no NaN, finite derivatives of every order).
    """
    parts = g.unflatten(-1, (2, 3))
    tiny = torch.finfo(g.dtype).tiny
    return (parts / torch.sqrt((parts * parts).sum(-1, keepdim=True) + tiny)).flatten(-2)


class GradientLoss(nn.Module):
    """Base of the gradient-matching losses: ``forward(g_net, g_geo) -> (B,)``, 0 when the directions agree."""

    def forward(self, g_net: Float[Tensor, "*B 6"], g_geo: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B"]:
        """Loss per pose; both gradients as ``(ω, v)`` twists (`pose_gradient`, `target_gradient`)."""
        check_shape(g_net, "* 6", "g_net")
        check_shape(g_geo, "* 6", "g_geo")
        return self.compare(normalize_twist(g_net), normalize_twist(g_geo.to(g_net.dtype)))

    def compare(self, net: Float[Tensor, "*B 6"], geo: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B"]:
        """The loss between part-normalised twists."""
        raise NotImplementedError


class DirectionLoss(GradientLoss):
    r"""MICCAI form: the squared distances between the unit rotation parts and the unit translation parts, in [0, 8]."""

    def compare(self, net: Tensor, geo: Tensor) -> Tensor:
        return ((net - geo) ** 2).sum(-1)


class GeodesicLoss(GradientLoss):
    r"""Journal form: the double geodesic distance (radius 1) between the rigid motions $\exp(\hat g)$."""

    def compare(self, net: Tensor, geo: Tensor) -> Tensor:
        return double_geodesic_distance(se3_exp(net), se3_exp(geo), 1.0)


#: Gradient-matching losses by name: ``"direction"`` (MICCAI) and ``"geodesic"`` (journal).
GRADIENT_LOSSES: Registry[GradientLoss] = Registry("gradient loss", GradientLoss)
GRADIENT_LOSSES.register("direction", DirectionLoss)
GRADIENT_LOSSES.register("geodesic", GeodesicLoss)


def get_gradient_loss(name: str) -> GradientLoss:
    """The loss registered as ``name`` (see `GRADIENT_LOSSES`).

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    return GRADIENT_LOSSES.get(name)
