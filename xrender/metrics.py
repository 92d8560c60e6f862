r"""Registration error metrics, each named for exactly what it measures.

* `target_registration_error`: the 3-D **mean TRE** — mean distance (mm) between target points
  placed by the estimated pose and by the true pose, measured in the camera frame. This is the TRE
  the ProST paper reports (success = mean TRE < 10 mm, `is_success`).
* `reprojection_distance`: the **mean reprojection distance** — the same points projected to the
  detector by both poses, compared there in detector mm (pixels × pixel spacing). It is *not* a
  TRE: in-plane errors appear enlarged by the magnification sdd/sid, errors along the rays barely
  show — and as most of a single view's error lies in depth, it is usually the smaller number.
* `rotation_error`: the angle (degrees) of the rotation between the two poses.
* `translation_error`: how far (mm) the volume's isocentre is from where the true pose puts it,
  in the camera frame — the translation error of the volume motion about the isocentre, so
  it does not mix in the rotation error the way a camera-centre distance would.
"""

from __future__ import annotations

import math

from jaxtyping import Bool, Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.camera import ConeBeam, project
from xrender.geometry.se3 import invert, pose_rotation, so3_angle, transform_points

__all__ = [
    "SUCCESS_TRE_MM",
    "is_success",
    "reprojection_distance",
    "rotation_error",
    "target_registration_error",
    "translation_error",
]

#: A registration succeeds when its mean TRE is below this (mm), as in the ProST paper.
SUCCESS_TRE_MM = 10.0


def target_registration_error(
    estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"], points: Float[Tensor, "*B N 3"]
) -> Float[Tensor, "*B"]:
    r"""Mean 3-D distance (mm) between ``points`` seen from the estimated and the true camera.

    $$
    \text{TRE} = \frac1N \sum_i \big\| T_\text{est}^{-1} p_i - T_\text{true}^{-1} p_i \big\|
    $$

    Args:
        estimate: estimated camera-to-world poses.
        truth: true camera-to-world poses (batch shape broadcasting with ``estimate``'s).
        points: world points (mm), e.g. anatomical landmarks, ``(N, 3)`` or batched.

    Returns:
        Mean TRE per pose, mm.

    Raises:
        ValueError: malformed shapes, no points, or NaN/inf.
    """
    for value, pattern, name in (
        (estimate, "* 4 4", "estimate"),
        (truth, "* 4 4", "truth"),
        (points, "* N 3", "points"),
    ):
        check_finite(check_shape(value, pattern, name), name)
    if points.shape[-2] == 0:
        raise ValueError("points: expected at least one point, got 0")
    points = points.to(estimate.dtype)
    difference = transform_points(invert(estimate), points) - transform_points(invert(truth.to(estimate.dtype)), points)
    return difference.norm(dim=-1).mean(-1)


def _check_poses(estimate: Tensor, truth: Tensor) -> None:
    for value, name in ((estimate, "estimate"), (truth, "truth")):
        check_finite(check_shape(value, "* 4 4", name), name)


def rotation_error(estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"]) -> Float[Tensor, "*B"]:
    r"""Angle (degrees) of the rotation between the poses: $\angle(R_\text{est}^\top R_\text{true})$.

    Raises:
        ValueError: malformed shapes or NaN/inf.
    """
    _check_poses(estimate, truth)
    return so3_angle(pose_rotation(estimate), pose_rotation(truth.to(estimate.dtype))) * (180.0 / math.pi)


def translation_error(
    estimate: Float[Tensor, "*B 4 4"], truth: Float[Tensor, "*B 4 4"], isocenter: Float[Tensor, "*B 3"]
) -> Float[Tensor, "*B"]:
    r"""Distance (mm) between the isocentre as seen by the estimated and by the true camera.

    $\| T_\text{est}^{-1} c - T_\text{true}^{-1} c \|$ — the translation part of the volume
    motion between the poses, about the isocentre $c$ (world mm).

    Raises:
        ValueError: malformed shapes or NaN/inf.
    """
    _check_poses(estimate, truth)
    check_finite(check_shape(isocenter, "* 3", "isocenter"), "isocenter")
    return target_registration_error(estimate, truth, isocenter.to(estimate.dtype).unsqueeze(-2))


def reprojection_distance(
    estimate: Float[Tensor, "*B 4 4"],
    truth: Float[Tensor, "*B 4 4"],
    points: Float[Tensor, "*B N 3"],
    geometry: ConeBeam,
) -> Float[Tensor, "*B"]:
    r"""Mean distance (detector mm) between ``points`` projected by the estimated and by the true pose.

    $\frac1N \sum_i \| (\pi(T_\text{est}, p_i) - \pi(T_\text{true}, p_i)) \odot s \|$ with $\pi$ the
    projection to pixels $(u, v)$ and $s$ the pixel spacing (mm per column, mm per row). Not a TRE.

    Raises:
        ValueError: malformed shapes, no points, or NaN/inf.
    """
    _check_poses(estimate, truth)
    check_finite(check_shape(points, "* N 3", "points"), "points")
    if points.shape[-2] == 0:
        raise ValueError("points: expected at least one point, got 0")
    points = points.to(estimate.dtype)
    K = geometry.intrinsics(dtype=estimate.dtype, device=estimate.device)
    spacing = estimate.new_tensor([geometry.pixel_spacing[1], geometry.pixel_spacing[0]])  # (u, v) = (column, row)
    difference = project(points, estimate, K) - project(points, truth.to(estimate.dtype), K)
    return (difference * spacing).norm(dim=-1).mean(-1)


def is_success(mean_tre_mm: Float[Tensor, "*B"], threshold_mm: float = SUCCESS_TRE_MM) -> Bool[Tensor, "*B"]:
    """``mean_tre_mm < threshold_mm`` (the ProST paper's success: 10 mm).

    Raises:
        ValueError: a threshold that is not a positive number.
    """
    check_positive(threshold_mm, "threshold_mm")
    return mean_tre_mm < threshold_mm
