r"""Pose perturbations about the isocentre, along the camera's axes.

Registration and its evaluation describe a pose by how the *volume* is moved relative to a
reference view. xrender expresses that motion $\delta$ (a 4×4 rigid transform) in the
**isocentre frame** $F$: origin at the volume's isocentre $c$, axes parallel to the
reference camera's axes. Rotations then turn the volume about its own centre, and translations
move it along the image's $u$ (right), $v$ (down) and depth (away from the source)
directions, so rotation and translation decouple — the parameterization xreg and the ProST paper use.

Moving the volume by $\delta$ in $F$ is the same as moving the camera by
$\delta^{-1}$. With the reference camera-to-world pose $T_0$ and
$F = [R_0 \mid c]$, the perturbed camera-to-world pose is

$$
T = F\,\delta^{-1}\,F^{-1}\,T_0 .
$$

Shapes are checked; values are not (NaN in, NaN out): they are checked at entry points.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender.geometry.se3 import compose, invert, make_pose

__all__ = ["isocenter_frame", "perturb", "perturbation_between"]


def isocenter_frame(pose: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]) -> Float[Tensor, "*B 4 4"]:
    """The frame with origin ``isocenter`` (world mm) and the axes of ``pose``'s camera, as a 4×4 frame-to-world.

    Examples:
        >>> import torch
        >>> from xrender.geometry import isocenter_frame, standard_pose
        >>> isocenter = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
        >>> pose = standard_pose("ap", 600.0, isocenter)
        >>> F = isocenter_frame(pose, isocenter)
        >>> F[:3, 3].tolist()  # the origin is the isocentre
        [10.0, 20.0, 30.0]
        >>> torch.equal(F[:3, :3], pose[:3, :3])  # the axes are the camera's
        True
    """
    check_shape(pose, "* 4 4", "pose")
    check_shape(isocenter, "* 3", "isocenter")
    return make_pose(pose[..., :3, :3], isocenter.to(pose.dtype).expand(*pose.shape[:-2], 3))


def perturb(
    pose: Float[Tensor, "*B 4 4"], delta: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B 4 4"]:
    """Move the volume by ``delta`` (in the isocentre frame of ``pose``); return the new camera-to-world pose.

    Args:
        pose: reference camera-to-world pose(s).
        delta: volume motion(s) in the isocentre frame: rotation about the isocentre along the
            camera axes, then translation along the camera axes (mm).
        isocenter: the volume's isocentre in world mm.

    Returns:
        ``F δ⁻¹ F⁻¹ pose`` with ``F = isocenter_frame(pose, isocenter)``.

    Examples:
        >>> import torch
        >>> from xrender.geometry import make_pose, perturb, standard_pose
        >>> isocenter = torch.zeros(3, dtype=torch.float64)
        >>> pose = standard_pose("ap", 600.0, isocenter)  # source at y = -600 mm
        >>> delta = make_pose(torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 50.0], dtype=torch.float64))
        >>> perturb(pose, delta, isocenter)[:3, 3].round().int().tolist()  # the volume moves 50 mm away from the source
        [0, -650, 0]
    """
    check_shape(delta, "* 4 4", "delta")
    frame = isocenter_frame(pose, isocenter)
    return compose(frame, invert(delta), invert(frame), pose)


def perturbation_between(
    pose: Float[Tensor, "*B 4 4"], reference: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B 4 4"]:
    """The volume motion ``δ`` with ``perturb(reference, δ, isocenter) == pose`` (the inverse of `perturb`).

    Examples:
        >>> import torch
        >>> from xrender.geometry import get_pose_distribution, perturb, perturbation_between, standard_pose
        >>> isocenter = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
        >>> reference = standard_pose("ll", 600.0, isocenter)
        >>> delta = get_pose_distribution("prost-train").sample(3, seed=0, dtype=torch.float64)
        >>> torch.allclose(perturbation_between(perturb(reference, delta, isocenter), reference, isocenter), delta)
        True
    """
    check_shape(pose, "* 4 4", "pose")
    frame = isocenter_frame(reference, isocenter)
    return compose(invert(frame), reference, invert(pose), frame)
