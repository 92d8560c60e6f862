"""Standard C-arm views: camera-to-world poses looking at an isocentre.

Each view fixes the camera axes in the world (LPS) frame; the source sits ``sid`` mm from the
isocentre, on the side opposite the detector. Images are as seen *from the source*: for the AP
view the patient's left appears on the image's right and the head at the top, the usual way an
AP radiograph is shown.

| view | source at the patient's | beam (camera +z) | image right (+u) | image down (+v) |
| ---- | ----------------------- | ---------------- | ---------------- | --------------- |
| ``"ap"`` | anterior | posterior (+y) | left (+x) | inferior (−z) |
| ``"pa"`` | posterior | anterior (−y) | right (−x) | inferior (−z) |
| ``"ll"`` (left lateral) | right | left (+x) | anterior (−y) | inferior (−z) |
| ``"rl"`` (right lateral) | left | right (−x) | posterior (+y) | inferior (−z) |
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from xrender._checks import check_finite, check_positive, check_shape
from xrender.geometry.se3 import make_pose

__all__ = ["VIEW_AXES", "available_views", "standard_pose"]

#: Camera axes (x, y, z) of each view as world (LPS) unit vectors: the columns of the pose's rotation.
VIEW_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]] = {
    "ap": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "pa": ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
    "ll": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
    "rl": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 0.0, 0.0)),
}


def available_views() -> list[str]:
    """Names accepted by `standard_pose`.

    Examples:
        >>> from xrender.geometry import available_views
        >>> available_views()
        ['ap', 'll', 'pa', 'rl']
    """
    return sorted(VIEW_AXES)


def standard_pose(
    view: str,
    sid: float,
    isocenter: Float[Tensor, "*B 3"],
) -> Float[Tensor, "*B 4 4"]:
    """The camera-to-world pose of a standard view centred on ``isocenter``.

    Args:
        view: one of `available_views` (see the module table).
        sid: source-to-isocentre distance in mm.
        isocenter: world point(s) in mm (LPS) on the principal ray; the pose follows its dtype,
            device and leading dimensions.

    Returns:
        Pose(s) whose source is at ``isocenter − sid · beam`` and whose principal ray passes
        through ``isocenter``.

    Raises:
        ValueError: unknown view, non-positive ``sid``, or a malformed isocentre.

    Examples:
        >>> import torch
        >>> from xrender.geometry import standard_pose
        >>> pose = standard_pose("ll", 600.0, torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64))
        >>> pose[:3, 3].tolist()  # the source, on the patient's right of the isocentre
        [-590.0, 20.0, 30.0]
        >>> pose[:3, 2].tolist()  # the beam (camera +z) points to the patient's left
        [1.0, 0.0, 0.0]
        >>> standard_pose("ap", 600.0, torch.zeros(2, 3)).shape  # batched isocentres
        torch.Size([2, 4, 4])
    """
    if view not in VIEW_AXES:
        raise ValueError(f"unknown view {view!r}; available: {', '.join(available_views())}")
    check_positive(sid, "sid")
    check_finite(check_shape(isocenter, "* 3", "isocenter"), "isocenter")
    dtype = isocenter.dtype if isocenter.is_floating_point() else torch.get_default_dtype()
    R = torch.tensor(VIEW_AXES[view], dtype=dtype, device=isocenter.device).T
    R = R.expand(*isocenter.shape[:-1], 3, 3)
    source = isocenter.to(dtype) - sid * R[..., :, 2]
    return make_pose(R, source)
