"""Registration error metrics.

* `target_registration_error`: the 3-D **TRE** — mean distance (mm) between target points placed
  by the estimated pose and by the true pose, measured in the camera frame. This is the TRE the
  ProST paper reports (success = mean TRE < 10 mm). It is *not* the reprojection error (points
  projected to the detector and compared there in pixels or detector mm), which is smaller by
  roughly the magnification and blind to errors along the rays.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_shape
from xrender.geometry.se3 import invert, transform_points

__all__ = ["target_registration_error"]


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
