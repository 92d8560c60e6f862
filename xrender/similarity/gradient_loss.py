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

    Examples:
        >>> import torch
        >>> from xrender.geometry import standard_pose
        >>> from xrender.similarity.gradient_loss import twist_chart
        >>> isocenter = torch.zeros(3, dtype=torch.float64)
        >>> pose = standard_pose("ap", 500.0, isocenter)[None]
        >>> chart = twist_chart(pose, isocenter)
        >>> torch.allclose(chart(torch.zeros(1, 6, dtype=torch.float64)), pose)  # 0 is the pose itself
        True
        >>> deeper = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 20.0]], dtype=torch.float64)  # the volume 20 mm deeper
        >>> chart(deeper)[0, :3, 3].round().int().tolist()  # the source, 20 mm farther from the isocentre
        [0, -520, 0]
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

    Examples:
        >>> import torch
        >>> from xrender.geometry import standard_pose
        >>> from xrender.similarity.gradient_loss import pose_value_and_gradient
        >>> isocenter = torch.zeros(3, dtype=torch.float64)
        >>> pose = standard_pose("ap", 500.0, isocenter)[None]
        >>> def score(T):  # higher when the source is nearer (0, -510, 0)
        ...     return -((T[:, :3, 3] - torch.tensor([0.0, -510.0, 0.0], dtype=T.dtype)) ** 2).sum(-1)
        >>> value, g = pose_value_and_gradient(score, pose, isocenter, create_graph=False)
        >>> value.tolist(), g.round(decimals=6).abs().tolist()  # d(-score)/dξ, (ω, v): only the depth part is non-zero
        ([-100.0], [[0.0, 0.0, 0.0, 0.0, 0.0, 20.0]])
        >>> g[0, 5].item() < 0  # descending -score moves the volume deeper, away from the source
        True
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

    Examples:
        >>> import torch
        >>> from xrender import Volume
        >>> from xrender.geometry import ConeBeam, standard_pose
        >>> from xrender.render import DRR
        >>> from xrender.similarity import NCCSimilarity, RenderedSimilarity
        >>> from xrender.similarity.gradient_loss import similarity_value_and_gradient
        >>> data = torch.rand(1, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> volume = Volume(data, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
        >>> geometry = ConeBeam(sdd=1000.0, height=8, width=8, pixel_spacing=(4.0, 4.0), sid=500.0)
        >>> similarity = RenderedSimilarity(DRR(volume, geometry), NCCSimilarity())
        >>> pose = standard_pose("ap", 500.0, volume.isocenter)[None]
        >>> value, g = similarity_value_and_gradient(similarity, pose, similarity.drr(pose), create_graph=False)
        >>> value.round(decimals=6).tolist(), g.shape, bool(g.abs().max() < 1e-6)  # the maximum: gradient 0
        ([1.0], torch.Size([1, 6]), True)
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
    r"""$g_\text{net}$ alone; see `pose_value_and_gradient`.

    Examples:
        >>> import torch
        >>> from xrender.geometry import standard_pose
        >>> from xrender.similarity.gradient_loss import pose_gradient
        >>> isocenter = torch.zeros(3, dtype=torch.float64)
        >>> pose = standard_pose("ap", 500.0, isocenter)[None]
        >>> def score(T):  # higher when the source is nearer the isocentre
        ...     return -(T[:, :3, 3] - isocenter).norm(dim=-1)
        >>> pose_gradient(score, pose, isocenter, create_graph=False).round().int().tolist()  # turns change nothing
        [[0, 0, 0, 0, 0, 1]]
    """
    return pose_value_and_gradient(score, pose, isocenter, create_graph=create_graph)[1]


def target_gradient(
    pose: Float[Tensor, "*B 4 4"], true_pose: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B 6"]:
    r"""$g_\text{geo} = -2\log(\delta^\star)$: the geodesic gradient toward ``true_pose``, in `pose_gradient`'s chart.

    ``perturb(pose, se3_exp(-g / 2), isocenter)`` equals ``true_pose``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import get_pose_distribution, perturb, se3_exp, standard_pose
        >>> from xrender.similarity.gradient_loss import target_gradient
        >>> isocenter = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
        >>> pose = standard_pose("ap", 500.0, isocenter)[None]
        >>> delta = get_pose_distribution("prost-train").sample(1, seed=0, dtype=torch.float64)
        >>> true_pose = perturb(pose, delta, isocenter)
        >>> g = target_gradient(pose, true_pose, isocenter)
        >>> torch.allclose(perturb(pose, se3_exp(-g / 2), isocenter), true_pose)  # a step of -g/2 lands on it
        True
    """
    return -2 * se3_log(perturbation_between(true_pose, pose, isocenter))


def normalize_twist(g: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B 6"]:
    """Scale the rotation part ``g[..., :3]`` and the translation part ``g[..., 3:]`` to unit length each.

    A zero part stays zero (no NaN, finite derivatives of every order).

    Examples:
        >>> import torch
        >>> from xrender.similarity.gradient_loss import normalize_twist
        >>> normalize_twist(torch.tensor([3.0, 4.0, 0.0, 0.0, 0.0, -2.0], dtype=torch.float64)).tolist()  # (ω, v)
        [0.6, 0.8, 0.0, 0.0, 0.0, -1.0]
        >>> normalize_twist(torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0, 0.0])).tolist()  # a zero part stays zero
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    """
    parts = g.unflatten(-1, (2, 3))
    tiny = torch.finfo(g.dtype).tiny
    return (parts / torch.sqrt((parts * parts).sum(-1, keepdim=True) + tiny)).flatten(-2)


class GradientLoss(nn.Module):
    """Base of the gradient-matching losses: ``forward(g_net, g_geo) -> (B,)``, 0 when the directions agree.

    Examples:
        >>> import torch
        >>> from xrender.similarity.gradient_loss import GradientLoss, get_gradient_loss
        >>> loss = get_gradient_loss("direction")
        >>> isinstance(loss, GradientLoss)
        True
        >>> g_geo = torch.tensor([[0.1, 0.0, 0.0, 0.0, 2.0, 0.0]])
        >>> loss(3 * g_geo, g_geo).tolist()  # only the directions count
        [0.0]
    """

    def forward(self, g_net: Float[Tensor, "*B 6"], g_geo: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B"]:
        """Loss per pose; both gradients as ``(ω, v)`` twists (`pose_gradient`, `target_gradient`)."""
        check_shape(g_net, "* 6", "g_net")
        check_shape(g_geo, "* 6", "g_geo")
        return self.compare(normalize_twist(g_net), normalize_twist(g_geo.to(g_net.dtype)))

    def compare(self, net: Float[Tensor, "*B 6"], geo: Float[Tensor, "*B 6"]) -> Float[Tensor, "*B"]:
        """The loss between part-normalised twists."""
        raise NotImplementedError


class DirectionLoss(GradientLoss):
    r"""MICCAI form: the squared distances between the unit rotation parts and the unit translation parts, in [0, 8].

    Examples:
        >>> import torch
        >>> from xrender.similarity.gradient_loss import DirectionLoss
        >>> g_geo = torch.tensor([[0.1, 0.0, 0.0, 0.0, 2.0, 0.0]])
        >>> g_net = torch.tensor([[0.0, 0.5, 0.0, 0.0, -1.0, 0.0]])  # rotation at 90°, translation opposed
        >>> DirectionLoss()(g_net, g_geo).round(decimals=6).tolist(), DirectionLoss()(-g_geo, g_geo).tolist()
        ([6.0], [8.0])
    """

    def compare(self, net: Tensor, geo: Tensor) -> Tensor:
        return ((net - geo) ** 2).sum(-1)


class GeodesicLoss(GradientLoss):
    r"""Journal form: the double geodesic distance (radius 1) between the rigid motions $\exp(\hat g)$.

    Examples:
        >>> import torch
        >>> from xrender.similarity.gradient_loss import GeodesicLoss
        >>> g_geo = torch.tensor([[0.1, 0.0, 0.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
        >>> GeodesicLoss()(5 * g_geo, g_geo).abs().tolist()
        [0.0]
        >>> bool(GeodesicLoss()(-g_geo, g_geo) > GeodesicLoss()(g_geo.roll(1, dims=-1), g_geo) > 0)
        True
    """

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

    Examples:
        >>> from xrender.similarity.gradient_loss import GRADIENT_LOSSES, get_gradient_loss
        >>> GRADIENT_LOSSES.names()
        ['direction', 'geodesic']
        >>> type(get_gradient_loss("geodesic")).__name__
        'GeodesicLoss'
    """
    return GRADIENT_LOSSES.get(name)
