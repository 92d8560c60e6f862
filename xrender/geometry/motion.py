r"""Motion: the one way six user-facing numbers become a camera pose.

A **motion** $x = (\omega, t) \in \mathbb R^6$ moves the volume about its isocentre $c$ relative
to a *reference* camera-to-world pose $T_0$ (a standard view, a DICOM X-ray's pose, a stage's
starting pose):

* $\omega$ — a rotation vector in **degrees** (axis × angle) turning the volume about its
  isocentre, axes along the reference camera's $(u, v, \text{depth})$;
* $t$ — a translation in **mm** of the volume along the same axes (image right, image down,
  away from the source).

The volume motion is $\delta(x) = [\,\exp(\hat\omega) \mid t\,]$ in the isocentre frame of $T_0$,
and the camera pose is ``perturb(T0, δ(x), c)`` (`xrender.geometry.perturbation`). Rotation and
translation are decoupled — turning never shifts the isocentre — so per-axis step sizes and
search widths (degrees and mm, as in xreg and the ProST paper) mean what they say. $x = 0$ is the
reference pose itself.

Every registration optimiser searches this space, and ``xrender render --pose``,
``xrender register --init`` and the ``motion`` that ``pose.json`` records are motions too. The
parameterizations of `xrender.geometry.parameterizations` are something else: encodings of an
absolute pose about the world origin (for networks and batched rendering), not user-facing
numbers; see the Conventions page.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_shape
from xrender.geometry.perturbation import perturb, perturbation_between
from xrender.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from xrender.geometry.se3 import make_pose

__all__ = ["motion_from_pose", "pose_from_motion"]


def pose_from_motion(
    params: Float[Tensor, "*B 6"], reference: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "3"]
) -> Float[Tensor, "*B 4 4"]:
    """Camera-to-world poses for motion parameters ``(ωx, ωy, ωz [deg], tu, tv, tdepth [mm])`` about ``reference``.

    Differentiable in ``params``; follows ``reference``'s dtype and device. Values are not checked
    (a hot path: registration calls it per evaluation); NaN gives NaN.

    Args:
        params: motions: rotation vector (degrees) about the reference camera's ``u``, ``v`` and
            depth axes through the isocentre, then translation (mm) along them.
        reference: the camera-to-world pose(s) of ``x = 0``.
        isocenter: the volume's isocentre, world mm.

    Raises:
        ValueError: malformed inputs.

    Examples:
        >>> import torch
        >>> from xrender.geometry import pose_from_motion, so3_angle, standard_pose
        >>> isocenter = torch.zeros(3, dtype=torch.float64)
        >>> reference = standard_pose("ap", 600.0, isocenter)
        >>> deeper = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 50.0], dtype=torch.float64)  # (ωu, ωv, ωdepth) deg, t mm
        >>> pose = pose_from_motion(deeper, reference, isocenter)
        >>> pose[:3, 3].round().int().tolist()  # 50 mm deeper: the source is 650 mm from the isocentre
        [0, -650, 0]
        >>> turned = torch.tensor([0.0, 0.0, 30.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        >>> pose = pose_from_motion(turned, reference, isocenter)
        >>> round(so3_angle(pose[:3, :3], reference[:3, :3]).rad2deg().item(), 6)  # a 30° turn about the beam
        30.0
    """
    check_shape(params, "* 6", "params")
    check_shape(reference, "* 4 4", "reference")
    params = params.to(reference)
    rotation = axis_angle_to_matrix(params[..., :3] * (math.pi / 180.0))
    delta = make_pose(rotation, params[..., 3:])
    return perturb(reference, delta, isocenter.to(reference))


def motion_from_pose(
    pose: Float[Tensor, "*B 4 4"], reference: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "3"]
) -> Float[Tensor, "*B 6"]:
    """The motion parameters with ``pose_from_motion(x, reference, isocenter) == pose`` (rotation angle < 180°).

    Examples:
        >>> import torch
        >>> from xrender.geometry import motion_from_pose, pose_from_motion, standard_pose
        >>> isocenter = torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64)
        >>> reference = standard_pose("ap", 600.0, isocenter)
        >>> motion = torch.tensor([5.0, -3.0, 10.0, 2.0, -4.0, 20.0], dtype=torch.float64)  # degrees, then mm
        >>> pose = pose_from_motion(motion, reference, isocenter)
        >>> motion_from_pose(pose, reference, isocenter).round(decimals=6).tolist()
        [5.0, -3.0, 10.0, 2.0, -4.0, 20.0]
    """
    delta = perturbation_between(pose, reference, isocenter.to(reference))
    omega = matrix_to_axis_angle(delta[..., :3, :3]) * (180.0 / math.pi)
    return torch.cat([omega, delta[..., :3, 3]], dim=-1)
